"""Per-agent proxy credentials, so the audit log says which local agent made each call.

Each agent gets a random token, shown once by `clavis-mcp agent add` and again only by
`clavis-mcp env --agent NAME` (which has to print it into ``HTTPS_PROXY``). The token is kept
sealed with the vault key, bound to the agent's name, so a row copied onto another agent
fails to open. Revoking deletes the row: every proxy reading the vault stops accepting the
token on its next request, without a restart.

The record also holds the agent's routing choices, read by the proxy's destination check:
``deny_other_hosts`` (refuse hosts no service owns instead of tunnelling them opaquely) and
``uses`` (the services this agent means where several services share a host).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AgentError, UnknownService, VaultCorrupted
from .hosts import rules_overlap
from .storage.protocol import Value
from .store import Snapshot, Vault

KIND = (
    "agent"  # records (kind, name): {"token": sealed, "created_at": float, "deny_other_hosts": bool, "uses": JSON list}
)
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED = frozenset({"mcp", "cli", "unauthenticated"})  # names the audit log uses for other sources
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    created_at: float
    deny_other_hosts: bool = False
    uses: tuple[str, ...] = ()


def _agent(key: str, fields: Mapping[str, Value]) -> Agent:
    try:
        uses = tuple(str(name) for name in json.loads(str(fields.get("uses") or "[]")))
    except (ValueError, TypeError):
        raise VaultCorrupted(
            f"the service bindings of agent {key!r} are damaged; set them again with `agent use`"
        ) from None
    created = fields.get("created_at")
    return Agent(
        key, float(created) if isinstance(created, int | float) else 0.0, bool(fields.get("deny_other_hosts")), uses
    )


def _context(name: str) -> str:
    return f"agent:{name}"


def validate_agent_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise AgentError(
            f"invalid agent name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED:
        raise AgentError(f"the agent name {name!r} is reserved; choose another")
    return name


def add_agent(vault: Vault, name: str, *, deny_other_hosts: bool = False, uses: tuple[str, ...] = ()) -> str:
    """Create agent ``name`` and return its new token (the caller shows it once)."""
    validate_agent_name(name)
    uses = _checked_uses(vault, uses)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    sealed = vault.seal(token.encode(), _context(name))
    fields: dict[str, Value] = {
        "token": sealed,
        "created_at": time.time(),
        "deny_other_hosts": deny_other_hosts,
        "uses": json.dumps(uses),
    }
    with vault.store.atomic() as batch:
        if batch.get(KIND, name) is not None:
            raise AgentError(f"an agent named {name!r} already exists; revoke it first or pick another name")
        batch.put(KIND, name, fields, expect=0)
    return token


def list_agents(vault: Vault) -> list[Agent]:
    with vault.store.read() as batch:
        records = batch.records(KIND)
    return [_agent(r.key, r.fields) for r in records]


def use_services(vault: Vault, name: str, services: tuple[str, ...]) -> Agent:
    """Bind agent ``name`` to ``services``: each replaces any earlier binding that shares a host
    with it (the agent now means this one there). An empty tuple clears every binding."""
    wanted = _checked_uses(vault, services)
    snapshot = vault.snapshot()
    with vault.store.atomic() as batch:
        record = batch.get(KIND, name)
        if record is None:
            raise AgentError(f"unknown agent {name!r}; create it with: clavis-mcp agent add {name}")
        kept = [] if not wanted else [
            old for old in _agent(name, record.fields).uses
            if old not in wanted and not any(_share_a_host(snapshot, old, new) for new in wanted)
        ]  # fmt: skip
        uses = tuple(kept) + wanted
        batch.put(KIND, name, {**record.fields, "uses": json.dumps(uses)}, expect=record.version)
    return _agent(name, {**record.fields, "uses": json.dumps(uses)})


def set_deny_other_hosts(vault: Vault, name: str, deny: bool) -> None:
    with vault.store.atomic() as batch:
        record = batch.get(KIND, name)
        if record is None:
            raise AgentError(f"unknown agent {name!r}; create it with: clavis-mcp agent add {name}")
        batch.put(KIND, name, {**record.fields, "deny_other_hosts": deny}, expect=record.version)


def agent_policies(snapshot: Snapshot, vault: Vault) -> dict[str, Agent]:
    """Every agent's routing choices, read once per vault change (the snapshot's derived views)."""
    return snapshot.derived(f"{KIND}:policies", lambda: {a.name: a for a in list_agents(vault)})


def _checked_uses(vault: Vault, services: tuple[str, ...]) -> tuple[str, ...]:
    known = {s.name for s in vault.list_services()}
    unknown = [name for name in services if name not in known]
    if unknown:
        raise AgentError(
            f"unknown service {unknown[0]!r} for --use; known services: {', '.join(sorted(known)) or 'none yet'}"
        )
    return tuple(dict.fromkeys(services))


def _share_a_host(snapshot: Snapshot, a: str, b: str) -> bool:
    try:
        first, second = snapshot.service(a), snapshot.service(b)
    except UnknownService:
        return False
    return any(rules_overlap(x, y) for x in first.hosts for y in second.hosts)


def revoke_agent(vault: Vault, name: str) -> None:
    with vault.store.atomic() as batch:
        deleted = batch.delete(KIND, name)
    if not deleted:
        known = ", ".join(a.name for a in list_agents(vault)) or "none yet"
        raise AgentError(f"unknown agent {name!r}; known agents: {known}")


def agent_token(vault: Vault, name: str) -> str:
    """The token of one agent, for `clavis-mcp env --agent NAME`."""
    with vault.store.read() as batch:
        record = batch.get(KIND, name)
    if record is None:
        raise AgentError(f"unknown agent {name!r}; create it with: clavis-mcp agent add {name}")
    return _open(vault, name, record.fields.get("token"))


def _open(vault: Vault, name: str, blob: object) -> str:
    what = f"the proxy token of agent {name!r}"
    if not isinstance(blob, bytes):
        raise VaultCorrupted(f"{what} is damaged; revoke the agent and add it again")
    return vault.unseal(blob, _context(name), what).decode()


class AgentTokens:
    """The live name-to-token map the proxy authenticates against; re-read when the vault changes
    (adding or revoking an agent moves the store's change counter)."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: tuple[int, dict[str, str]] | None = None

    def __call__(self) -> dict[str, str]:
        counter = self._vault.store.changes()
        if self._cache is None or self._cache[0] != counter:
            self._cache = (counter, self._read())
        return self._cache[1]

    def as_of(self, snapshot: Snapshot) -> dict[str, str]:
        """The tokens as ``snapshot`` knows them: the proxy's stages share the one snapshot a
        request takes, so a request asks the store whether it changed once, not once per stage
        (a revocation still makes the next request's snapshot a new one)."""
        return snapshot.derived(f"{KIND}:tokens", self._read)

    def _read(self) -> dict[str, str]:
        with self._vault.store.read() as batch:
            records = batch.records(KIND)
        return {r.key: _open(self._vault, r.key, r.fields.get("token")) for r in records}
