"""Per-service policy: confirm writes, and the live-check probe; read by the MCP front end and the
proxy alike, so it lives here, in the bottom layer.

One record per service (kind ``policy``, bound to the service, so a removed service takes its
policy with it), written without ``quiet``: a change moves the store's change counter, so a
proxy can read every service's policy once per change (:func:`policies_as_of`). Nothing here is
secret.

The record's fields are flat and open: :func:`save_policy` keeps fields it does not know. The
approval policy is two kinds of such fields: ``"approvals"`` = ``none`` / ``writes`` / ``all`` for
every agent, ``"approvals:<agent>"`` for one (set with ``clavis-mcp policy``); without them,
``confirm_writes`` means ``writes`` (what it meant before approvals were per agent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .connectors import Probe
from .errors import InvalidService, UnknownService
from .storage.protocol import Value
from .store import Snapshot, Vault

KIND = "policy"  # {"confirm_writes": bool, "probe": "GET /path" or None, "approvals[:agent]": mode, ...}
APPROVAL_MODES = ("none", "writes", "all")
_AGENT_PREFIX = "approvals:"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_PROBE = re.compile(r"^(GET|HEAD|OPTIONS) (/[!-~]*)$")


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    confirm_writes: bool = False
    probe: Probe | None = None  # overrides the connector's probe (and gives a generic service one)
    approvals: str | None = None  # none / writes / all for every agent; None: confirm_writes says
    agent_approvals: Mapping[str, str] = field(default_factory=dict)  # agent -> mode, over ``approvals``

    def approval_mode(self, agent: str) -> str:
        """Which of this service's requests from ``agent`` wait for a person: none, writes or all."""
        return self.agent_approvals.get(agent, self.service_mode)

    @property
    def service_mode(self) -> str:
        """The mode of every agent without one of its own: ``approvals``, else what ``confirm_writes`` says."""
        if self.approvals is not None:
            return self.approvals
        return "writes" if self.confirm_writes else "none"

    def needs_approval(self, agent: str, method: str) -> bool:
        mode = self.approval_mode(agent)
        return mode == "all" or (mode == "writes" and method.upper() not in _SAFE)


def check_mode(mode: str) -> str:
    if mode not in APPROVAL_MODES:
        raise InvalidService(f"approval policy {mode!r}: use none, writes or all")
    return mode


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


def load_policies(vault: Vault, services: Iterable[str]) -> dict[str, ServicePolicy]:
    """The policies of ``services`` in one read (the default for a service without one): a listing
    pays one transaction for its page, not one per service."""
    with vault.store.read() as batch:
        records = {name: batch.get(KIND, name) for name in services}
    return {name: ServicePolicy() if r is None else _policy(r.fields) for name, r in records.items()}


def save_policy(vault: Vault, service: str, policy: ServicePolicy) -> None:
    """Set the policy of an existing service (fields of the record this version does not know stay,
    and so do the approval fields: :func:`set_approvals` writes those)."""
    with vault.store.atomic() as batch:
        if batch.service(service) is None:
            raise UnknownService(service, list(batch.services()))
        current = batch.get(KIND, service)
        fields: dict[str, Value] = dict(current.fields) if current is not None else {}
        fields.update(confirm_writes=policy.confirm_writes, probe=probe_text(policy.probe) if policy.probe else None)
        batch.put(KIND, service, fields, service=service, expect=current.version if current else 0)


def set_approvals(vault: Vault, service: str, mode: str | None, agent: str | None = None) -> ServicePolicy:
    """Set (``mode``: none, writes or all) or remove (None) which of a service's requests wait for a
    person, for every agent or for ``agent``. For every agent, ``confirm_writes`` follows (writes
    or all: yes), so the MCP settings say the same. Returns the policy as now stored."""
    with vault.store.atomic() as batch:
        if batch.service(service) is None:
            raise UnknownService(service, list(batch.services()))
        current = batch.get(KIND, service)
        fields: dict[str, Value] = dict(current.fields) if current is not None else {}
        name = "approvals" if agent is None else _AGENT_PREFIX + agent
        if mode is None:
            fields.pop(name, None)
        else:
            fields[name] = check_mode(mode)
            if agent is None:
                fields["confirm_writes"] = mode != "none"
        batch.put(KIND, service, fields, service=service, expect=current.version if current is not None else 0)
    return _policy(fields)


def set_confirm_writes(vault: Vault, service: str, confirm: bool) -> ServicePolicy:
    """``mcp-settings --[no-]confirm-writes``: make writes wait for a person (or not) for every agent.

    The service-wide ``approvals`` field goes, so ``confirm_writes`` is what holds (a stored
    ``writes`` or ``none`` would otherwise outrank it and the two would disagree). A service whose
    every request waits (``all``) keeps it: asking for writes changes nothing, and turning writes
    off would also turn reads off, which is ``clavis-mcp policy``'s to say, so that is refused.
    Per-agent modes stay. Returns the policy as now stored."""
    with vault.store.atomic() as batch:
        if batch.service(service) is None:
            raise UnknownService(service, list(batch.services()))
        current = batch.get(KIND, service)
        fields: dict[str, Value] = dict(current.fields) if current is not None else {}
        if _policy(fields).approvals == "all":
            if confirm:
                return _policy(fields)
            raise InvalidService(
                f"every request of {service} waits for approval (approvals: all); "
                f"change that with `clavis-mcp policy {service} --approvals writes` or `--approvals none`"
            )
        fields.pop("approvals", None)
        fields["confirm_writes"] = confirm
        batch.put(KIND, service, fields, service=service, expect=current.version if current is not None else 0)
    return _policy(fields)


def policies_as_of(vault: Vault, snapshot: Snapshot) -> dict[str, ServicePolicy]:
    """Every service's policy as of ``snapshot`` (services without one are absent), read once per
    change of the vault rather than once per request."""

    def build() -> dict[str, ServicePolicy]:
        with vault.store.read() as batch:
            return {r.key: _policy(r.fields) for r in batch.records(KIND)}

    return snapshot.derived("policy", build)


def _policy(fields: Mapping[str, Value]) -> ServicePolicy:
    """A mode this version does not know reads as ``all``: fail closed, a person is asked."""
    probe = fields.get("probe")
    mode = fields.get("approvals")
    agents = {
        name[len(_AGENT_PREFIX) :]: value if value in APPROVAL_MODES else "all"
        for name, value in fields.items()
        if name.startswith(_AGENT_PREFIX) and isinstance(value, str)
    }
    return ServicePolicy(
        confirm_writes=bool(fields.get("confirm_writes")),
        probe=parse_probe(probe) if isinstance(probe, str) and probe else None,
        approvals=None if mode is None else mode if mode in APPROVAL_MODES else "all",
        agent_approvals=agents,
    )
