"""Per-service settings of the MCP front end: confirm writes, and the live-check probe.

They live in the vault file, in a table of their own that follows the service's lifetime
(``ON DELETE CASCADE``), so the MCP server, the CLI and a second process agree on them and a
removed service takes its settings with it. Nothing here is secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clavis_mcp.vault import Vault
from clavis_mcp.vault.connectors import Probe
from clavis_mcp.vault.errors import InvalidService, UnknownService

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mcp_service_settings (
    service TEXT PRIMARY KEY REFERENCES services(name) ON DELETE CASCADE,
    confirm_writes INTEGER NOT NULL DEFAULT 0,
    probe TEXT
)
"""
_PROBE = re.compile(r"^(GET|HEAD|OPTIONS) (/[!-~]*)$")


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    confirm_writes: bool = False
    probe: Probe | None = None  # overrides the connector's probe (and gives a generic service one)


def parse_probe(text: str) -> Probe:
    match = _PROBE.match(text.strip())
    if not match:
        raise InvalidService(f"probe {text!r} must look like 'GET /v1/models' (GET, HEAD or OPTIONS and a path)")
    return Probe(match[1], match[2])


def probe_text(probe: Probe) -> str:
    return f"{probe.method} {probe.path}"


def load_settings(vault: Vault, service: str) -> ServiceSettings:
    _ensure_table(vault)
    rows = vault.query("SELECT confirm_writes, probe FROM mcp_service_settings WHERE service = ?", (service,))
    if not rows:
        return ServiceSettings()
    confirm, probe = rows[0]
    return ServiceSettings(confirm_writes=bool(confirm), probe=parse_probe(probe) if probe else None)


def save_settings(vault: Vault, service: str, settings: ServiceSettings) -> None:
    _ensure_table(vault)
    with vault.transaction() as conn:
        if conn.execute("SELECT 1 FROM services WHERE name = ?", (service,)).fetchone() is None:
            raise UnknownService(service, [s.name for s in vault.list_services()])
        conn.execute(
            "INSERT OR REPLACE INTO mcp_service_settings (service, confirm_writes, probe) VALUES (?, ?, ?)",
            (service, int(settings.confirm_writes), probe_text(settings.probe) if settings.probe else None),
        )


def _ensure_table(vault: Vault) -> None:
    vault.ensure_table("mcp_service_settings", _SCHEMA)
