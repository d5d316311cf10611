"""Per-service policy: confirm writes, and the live-check probe; read by the MCP front end and the
proxy alike, so it lives here, in the bottom layer.

One record per service (kind ``policy``, bound to the service, so a removed service takes its
policy with it), written without ``quiet``: a change moves the store's change counter, so a
proxy can read every service's policy once per change (:func:`policies_as_of`). Nothing here is
secret.

The record's fields are flat and open: :func:`save_policy` keeps fields it does not know. A
later policy (say approvals: ``"approvals"`` = ``none`` / ``writes`` / ``all`` for every agent,
``"approvals:<agent>"`` for one) is new fields of the same record and a new member of
:class:`ServicePolicy`, not a new table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .connectors import Probe
from .errors import InvalidService, UnknownService
from .storage.protocol import Value
from .store import Snapshot, Vault

KIND = "policy"  # {"confirm_writes": bool, "probe": "GET /path" or None, ...}
_PROBE = re.compile(r"^(GET|HEAD|OPTIONS) (/[!-~]*)$")


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    confirm_writes: bool = False
    probe: Probe | None = None  # overrides the connector's probe (and gives a generic service one)


def parse_probe(text: str) -> Probe:
    match = _PROBE.match(text.strip())
    if not match:
        raise InvalidService(f"probe {text!r} must look like 'GET /v1/models' (GET, HEAD or OPTIONS and a path)")
    return Probe(match[1], match[2])


def probe_text(probe: Probe) -> str:
    return f"{probe.method} {probe.path}"


def load_policy(vault: Vault, service: str) -> ServicePolicy:
    with vault.store.read() as batch:
        record = batch.get(KIND, service)
    return ServicePolicy() if record is None else _policy(record.fields)


def save_policy(vault: Vault, service: str, policy: ServicePolicy) -> None:
    """Set the policy of an existing service (fields of the record this version does not know stay)."""
    with vault.store.atomic() as batch:
        if batch.service(service) is None:
            raise UnknownService(service, list(batch.services()))
        current = batch.get(KIND, service)
        fields: dict[str, Value] = dict(current.fields) if current is not None else {}
        fields.update(confirm_writes=policy.confirm_writes, probe=probe_text(policy.probe) if policy.probe else None)
        batch.put(KIND, service, fields, service=service, expect=current.version if current else 0)


def policies_as_of(vault: Vault, snapshot: Snapshot) -> dict[str, ServicePolicy]:
    """Every service's policy as of ``snapshot`` (services without one are absent), read once per
    change of the vault rather than once per request."""

    def build() -> dict[str, ServicePolicy]:
        with vault.store.read() as batch:
            return {r.key: _policy(r.fields) for r in batch.records(KIND)}

    return snapshot.derived("policy", build)


def _policy(fields: Mapping[str, Value]) -> ServicePolicy:
    probe = fields.get("probe")
    return ServicePolicy(confirm_writes=bool(fields.get("confirm_writes")), probe=parse_probe(probe) if probe else None)  # type: ignore[arg-type]
