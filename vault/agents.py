"""Per-agent proxy credentials, so the audit log says which local agent made each call.

Each agent gets a random token, shown once by `clavis-mcp agent add` and again only by
`clavis-mcp env --agent NAME` (which has to print it into ``HTTPS_PROXY``). The token is kept
sealed with the vault key, bound to the agent's name, so a row copied onto another agent
fails to open. Revoking deletes the row: every proxy reading the vault stops accepting the
token on its next request, without a restart.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from .errors import AgentError, VaultCorrupted
from .store import Vault

KIND = "agent"  # records (kind, name): {"token": sealed token, "created_at": float}
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED = frozenset({"mcp", "cli", "unauthenticated"})  # names the audit log uses for other sources
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    created_at: float


def _context(name: str) -> str:
    return f"agent:{name}"


def validate_agent_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AgentError(
            f"invalid agent name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED:
        raise AgentError(f"the agent name {name!r} is reserved; choose another")
    return name


def add_agent(vault: Vault, name: str) -> str:
    """Create agent ``name`` and return its new token (the caller shows it once)."""
    validate_agent_name(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    sealed = vault.seal(token.encode(), _context(name))
    with vault.store.atomic() as batch:
        if batch.get(KIND, name) is not None:
            raise AgentError(f"an agent named {name!r} already exists; revoke it first or pick another name")
        batch.put(KIND, name, {"token": sealed, "created_at": time.time()}, expect=0)
    return token


def list_agents(vault: Vault) -> list[Agent]:
    with vault.store.read() as batch:
        records = batch.records(KIND)
    return [Agent(r.key, float(r.fields["created_at"] or 0)) for r in records]


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
            with self._vault.store.read() as batch:
                records = batch.records(KIND)
            tokens = {r.key: _open(self._vault, r.key, r.fields.get("token")) for r in records}
            self._cache = (counter, tokens)
        return self._cache[1]
