"""Scoped API keys: what agents and scripts put in ``CLAVIS_API_KEY``.

A key is shown once, at creation; only its SHA-256 is stored (a key has 256 bits of entropy, so a
slow hash adds nothing). Every request looks its key up in PostgreSQL, so a revocation or an
expiry applies on every replica at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import json
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
FIRST_ADMIN_KEY = "admin"  # the key team/bootstrap.py makes and prints; names are never reused
MAX_EXPIRES_IN = 10 * 366 * 86400  # seconds: a key that should outlive ten years has no expiry (null)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key or a logged-in person, its role and the services it may use."""

    name: str  # "key/NAME" or "user/EMAIL": the audit's source (no colon: it is a proxy user name)
    role: str
    services: tuple[str, ...]
    epoch: int | None = None  # a login's session epoch: a key is made only while it is current

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
    if not NAME.fullmatch(name):
        raise ApiRefused(400, f"invalid key name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ApiRefused(400, f"invalid role {role!r}: use admin or member")
    if expires_in is not None and not 0 < expires_in <= MAX_EXPIRES_IN:
        raise ApiRefused(
            400, f"expires_in_seconds must be between 1 and {MAX_EXPIRES_IN} (ten years), or null for no expiry"
        )
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
    """The key's principal if it exists, is not revoked and has not expired; None otherwise.

    Its maker's standing is not looked up here: whatever lowers it (removal, a new role or
    password, a sign-out) revokes the keys made with it in the same transaction
    (team/identity.py, ``_revoke_made_by``), so one lookup still answers."""
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


def refusal(conn: psycopg.Connection[Any], credential: str) -> str:
    """Why a bearer credential was refused, for the one who holds it: revoked, expired or unknown.

    Only a holder of the key (256 random bits) can ask, so naming its state tells no one else
    anything; a login token's expiry is read from its own (unverified) claims."""
    if not credential.startswith(PREFIX):
        exp = token_claims(credential).get("exp")
        if isinstance(exp, int) and exp <= datetime.now(UTC).timestamp():
            when = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
            return f"the login token expired at {when}; log in again"
        return "the login token is not valid on this server; log in again"
    row = conn.execute(
        "SELECT name, revoked_at, expires_at FROM api_keys WHERE key_hash = %s", (digest(credential),)
    ).fetchone()
    if row is None:
        return "this key is unknown to this server; ask an admin for a key"
    name, revoked, expires = row
    if revoked is not None:
        return (
            f"the key {name!r} was revoked at {revoked.isoformat(timespec='seconds')}, by an admin or because the"
            " person who made it (or made the key it was made with) was removed, signed out, or had their role or"
            " password changed; ask an admin for a new key"
        )
    if expires is not None:
        return f"the key {name!r} expired at {expires.isoformat(timespec='seconds')}; ask an admin for a new key"
    return "this key was refused; ask an admin for a new key"


def token_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))) if len(parts) == 3 else {}
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}
