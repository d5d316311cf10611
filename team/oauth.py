"""OAuth refresh for team services, single-flight across every replica.

A service's refresh token and client secret live in OpenBao KV v2 (``oauth/NAME``), its access
token is the service's credential, and PostgreSQL keeps the non-secret part (token endpoint,
client id, expiry). When the access token is due, the replica that gets PostgreSQL's advisory lock
for the service refreshes it; the others wait on the lock, then find it fresh and go on. The
writes back take the service's name lock too (the one add, rotate and remove hold), but only
once the token endpoint has answered, so an admin never waits on a provider: under it the
refresh checks that the grant is still the one it read and writes with check-and-set on the
versions it read. A refresh that lost to a rotation, a re-registration or a remove and re-add
writes nothing of the service's (a rotated refresh token of the same grant is still kept) and
the next request refreshes again. The token endpoint's answer never passes through the proxy
and never reaches a caller.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from clavis_mcp.proxy.upstream_trust import build_upstream_bundle
from clavis_mcp.vault.errors import ApiRefused, BaoRefused

from .bao import Bao
from .config import ReplicaConfig
from .replica import Replica
from .storage import service_lock_key, take_name_lock

SKEW = 60.0  # refresh this long before the access token expires
TIMEOUT = 15.0
CHANGED = "the OAuth grant or credential of {name!r} changed while it was being refreshed; try again"


def register(replica: Replica, name: str, body: dict[str, Any]) -> None:
    """Store an OAuth grant for an existing service (the first refresh gives its access token)."""
    fields = {k: body.get(k) for k in ("token_url", "client_id", "client_secret", "refresh_token")}
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise ApiRefused(400, "give token_url, client_id, client_secret and refresh_token as strings")
    if not str(fields["token_url"]).startswith("https://"):
        raise ApiRefused(400, "the token endpoint must be an https:// URL")
    if replica.store.definition(name) is None:
        raise ApiRefused(404, f"unknown service {name!r}; add it first")
    secrets = {"client_secret": str(fields["client_secret"]), "refresh_token": str(fields["refresh_token"])}
    with replica.conn.transaction():
        # A refresh's writes come wholly before or after this grant. Bounded: this runs on the loop.
        take_name_lock(replica.conn, name, transaction=True)
        replica.bao.kv_write(replica.names.kv, f"oauth/{name}", secrets)
        replica.conn.execute(
            "INSERT INTO oauth (service, token_url, client_id, expires_at) VALUES (%s, %s, %s, 0) "
            "ON CONFLICT (service) DO UPDATE SET token_url = excluded.token_url, client_id = excluded.client_id, "
            "expires_at = 0",
            (name, fields["token_url"], fields["client_id"]),
        )
        replica.conn.execute("UPDATE team_meta SET value = value + 1 WHERE key = 'services_version'")


def due(replica: Replica, name: str, now: float | None = None) -> bool:
    """Whether ``name`` is an OAuth service whose access token needs a refresh now. Read from the
    mirror's last sync: every refresh and registration moves the change counter, so no query."""
    now = time.time() if now is None else now
    expires_at = replica.mirror.oauth_expiry.get(name)
    return expires_at is not None and expires_at - now <= SKEW


async def refresh_if_due(replica: Replica, name: str) -> bool | None:
    """:func:`ensure_fresh` off the event loop: waiting on another replica's refresh, or on the token
    endpoint, must not stall this replica's other requests. None if no refresh was due."""
    if not due(replica, name):
        return None
    return await asyncio.to_thread(ensure_fresh, replica.config, name, replica.mirror.home)


def ensure_fresh(config: ReplicaConfig, name: str, home: Path) -> bool:
    """Refresh ``name``'s access token if it is due; True if this caller refreshed it. Blocking: it
    uses a connection and an OpenBao login of its own, so it can run in a thread."""
    names = config.names
    with psycopg.connect(config.database_url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"clavis-oauth:{name}",))
        row = conn.execute(
            "SELECT token_url, client_id, expires_at, xmin::text FROM oauth WHERE service = %s", (name,)
        ).fetchone()
        if row is None or float(row[2]) - time.time() > SKEW:
            return False  # not OAuth, or another replica refreshed it while this one waited
        token_url, client_id, registration = str(row[0]), str(row[1]), str(row[3])
        bao = Bao(config.bao_addr, approle=(names.approle, config.role_id, config.secret_id))
        try:
            found = bao.kv_read(names.kv, f"oauth/{name}")
            if found is None:
                raise ApiRefused(503, f"the OAuth grant of {name!r} is missing; register it again")
            grant, version = found
            credential_version = bao.kv_version(names.kv, names.secret_path(name))
            answer = _refresh(home, token_url, client_id, grant["client_secret"], grant["refresh_token"])
            _lock_name(conn, name)
            if not _same_registration(conn, name, registration):
                raise ApiRefused(503, CHANGED.format(name=name))
            kept = {**grant, "refresh_token": str(answer.get("refresh_token") or grant["refresh_token"])}
            _write(bao, names.kv, f"oauth/{name}", kept, version, name)
            access = {"credential": str(answer["access_token"])}
            secret_version = _write(bao, names.kv, names.secret_path(name), access, credential_version, name)
        finally:
            bao.close()
        expires_at = time.time() + float(answer.get("expires_in") or 3600)
        conn.execute(
            "UPDATE oauth SET expires_at = %s, refreshes = refreshes + 1 WHERE service = %s", (expires_at, name)
        )
        conn.execute("UPDATE services SET secret_version = %s WHERE name = %s", (secret_version, name))
        conn.execute("UPDATE team_meta SET value = value + 1 WHERE key = 'services_version'")
    return True


def _same_registration(conn: psycopg.Connection[Any], name: str, registration: str) -> bool:
    """Whether the grant's row is the one read before the token endpoint was asked. Its ``xmin``
    (the transaction that last wrote it) moves on a registration, and a remove takes the row with
    the service: versions alone cannot tell a grant removed and registered again (version 1 once
    more) from the one this refresh read."""
    same = conn.execute("SELECT 1 FROM oauth WHERE service = %s AND xmin::text = %s", (name, registration))
    return same.fetchone() is not None


def _lock_name(conn: psycopg.Connection[Any], name: str) -> None:
    """The advisory lock TeamStore takes on a service's name for add, rotate and remove (same key),
    held to the end of the caller's transaction. An unbounded wait: a refresh runs in a thread."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (service_lock_key(name),))


def _write(bao: Bao, mount: str, path: str, data: dict[str, str], cas: int, name: str) -> int:
    """A check-and-set write of what this refresh read: one that lost a race is a 503, not an overwrite."""
    try:
        return bao.kv_write(mount, path, data, cas=cas)
    except BaoRefused as exc:
        if exc.status != 400:  # OpenBao's answer to a check-and-set mismatch
            raise
        raise ApiRefused(503, CHANGED.format(name=name)) from None


def _refresh(home: Path, token_url: str, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
    trust = ssl.create_default_context(cafile=str(build_upstream_bundle(home / "token-endpoint-ca.pem")))
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    try:
        response = httpx.post(
            token_url, data=form, auth=(client_id, client_secret), verify=trust, timeout=TIMEOUT, trust_env=False
        )
    except httpx.HTTPError as exc:
        raise ApiRefused(503, f"the token endpoint could not be reached ({type(exc).__name__})") from None
    try:
        answer = response.json()
    except json.JSONDecodeError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        error = str(answer.get("error", ""))[:60] if isinstance(answer, dict) else ""
        raise ApiRefused(503, f"the token endpoint refused the refresh ({response.status_code} {error}".strip() + ")")
    return answer
