"""Scoped API keys: what agents and scripts put in ``CLAVIS_API_KEY``.

A key is shown once, at creation; only its SHA-256 is stored (a key has 256 bits of entropy, so a
slow hash adds nothing). Every request looks its key up in PostgreSQL, so a revocation or an
expiry applies on every replica at the next request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from clavis_mcp.vault.errors import ApiRefused

PREFIX = "clv_"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROLES = ("admin", "member")
ALL = "*"  # an admin key's scope: every service


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key or a logged-in person, its role and the services it may use."""

    name: str  # "key/NAME" or "user/EMAIL": the audit's source (no colon: it is a proxy user name)
    role: str
    services: tuple[str, ...]

    def may_use(self, service: str) -> bool:
        return ALL in self.services or service in self.services

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def create_key(
    conn: psycopg.Connection[Any],
    name: str,
    services: list[str],
    role: str = "member",
    expires_in: int | None = None,
    created_by: str | None = None,
) -> tuple[str, datetime | None]:
    """Store a new key; return it (the only time it is seen) and its expiry."""
    if not NAME.match(name):
        raise ApiRefused(400, f"invalid key name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ApiRefused(400, f"invalid role {role!r}: use admin or member")
    if expires_in is not None and expires_in <= 0:
        raise ApiRefused(400, "expires_in_seconds must be a positive number of seconds, or null for no expiry")
    scope = [ALL] if role == "admin" else sorted(set(services))
    key = PREFIX + secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
    try:
        conn.execute(
            "INSERT INTO api_keys (name, key_hash, role, services, created_by, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (name, digest(key), role, scope, created_by, expires_at),
        )
    except psycopg.errors.UniqueViolation:
        raise ApiRefused(409, f"a key named {name!r} already exists; revoke it or choose another name") from None
    return key, expires_at


def principal_for_key(conn: psycopg.Connection[Any], key: str) -> Principal | None:
    """The key's principal if it exists, is not revoked and has not expired; None otherwise."""
    row = conn.execute(
        "SELECT name, role, services FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now())",
        (digest(key),),
    ).fetchone()
    return Principal(f"key/{row[0]}", row[1], tuple(row[2])) if row else None


def list_keys(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT name, role, services, created_by, created_at, expires_at, revoked_at FROM api_keys ORDER BY name"
    ).fetchall()
    return [
        {
            "name": name,
            "role": role,
            "services": list(services),
            "created_by": by,
            "created_at": created.isoformat(),
            "expires_at": expires.isoformat() if expires else None,
            "revoked": revoked is not None,
        }
        for name, role, services, by, created, expires, revoked in rows
    ]


def revoke_key(conn: psycopg.Connection[Any], name: str) -> None:
    done = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))
    if done.rowcount == 0:
        raise ApiRefused(404, f"no active key named {name!r}; list them with GET /v1/admin/keys")
