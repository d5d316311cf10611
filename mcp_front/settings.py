"""Per-service settings of the MCP front end: now the vault's service policy (``vault/policy.py``),
which the proxy can read too. Kept as the names this package and the CLI import."""

from __future__ import annotations

from clavis_mcp.vault.policy import ServicePolicy as ServiceSettings
from clavis_mcp.vault.policy import load_policy as load_settings
from clavis_mcp.vault.policy import parse_probe, probe_text
from clavis_mcp.vault.policy import save_policy as save_settings

__all__ = ["ServiceSettings", "load_settings", "parse_probe", "probe_text", "save_settings"]
