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

from .errors import AgentError
from .store import Vault

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY,
    token BLOB NOT NULL,
    created_at REAL NOT NULL
)
"""
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED = frozenset({"mcp", "cli", "unauthenticated"})  # names the audit log uses for other sources
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    created_at: float


def _context(name: str) -> str:
    return f"agent:{name}"


def _ensure_table(vault: Vault) -> None:
    vault.ensure_table("agents", _SCHEMA)


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
    _ensure_table(vault)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with vault.transaction() as conn:
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (name,)).fetchone():
            raise AgentError(f"an agent named {name!r} already exists; revoke it first or pick another name")
        sealed = vault.seal(token.encode(), _context(name))
        conn.execute("INSERT INTO agents (name, token, created_at) VALUES (?, ?, ?)", (name, sealed, time.time()))
    return token


def list_agents(vault: Vault) -> list[Agent]:
    _ensure_table(vault)
    return [Agent(name, created) for name, created in vault.query("SELECT name, created_at FROM agents ORDER BY name")]


def revoke_agent(vault: Vault, name: str) -> None:
    _ensure_table(vault)
    with vault.transaction() as conn:
        deleted = conn.execute("DELETE FROM agents WHERE name = ?", (name,)).rowcount
    if not deleted:
        known = ", ".join(a.name for a in list_agents(vault)) or "none yet"
        raise AgentError(f"unknown agent {name!r}; known agents: {known}")


def agent_token(vault: Vault, name: str) -> str:
    """The token of one agent, for `clavis-mcp env --agent NAME`."""
    _ensure_table(vault)
    rows = vault.query("SELECT token FROM agents WHERE name = ?", (name,))
    if not rows:
        raise AgentError(f"unknown agent {name!r}; create it with: clavis-mcp agent add {name}")
    return vault.unseal(rows[0][0], _context(name), f"the proxy token of agent {name!r}").decode()


class AgentTokens:
    """The live name-to-token map the proxy authenticates against; re-read when the vault changes."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: tuple[tuple[tuple[str, bytes], ...], dict[str, str]] | None = None
        _ensure_table(vault)

    def __call__(self) -> dict[str, str]:
        rows = tuple(self._vault.query("SELECT name, token FROM agents ORDER BY name"))
        if self._cache is None or self._cache[0] != rows:
            tokens = {
                name: self._vault.unseal(blob, _context(name), f"the proxy token of agent {name!r}").decode()
                for name, blob in rows
            }
            self._cache = (rows, tokens)
        return self._cache[1]
