"""Services of a team deployment: definitions in PostgreSQL, credentials in OpenBao KV v2.

A definition is the JSON the local vault stores for a service (plus its name); its credential is
one KV v2 entry whose version PostgreSQL records beside the definition. Every change bumps one
counter (``services_version``), which replicas compare before each request to know when to
reload. Writes go to OpenBao first, then PostgreSQL in one transaction: a crash between the two
leaves a newer KV version nobody points at, never a definition without its credential; and
replicas read exactly the version the row records, so such a version is never injected. The
writers of one name (add, rotate, remove) take a PostgreSQL advisory lock on it and write to
OpenBao with check-and-set, so concurrent admins on different replicas cannot mix their changes.

KV versions start again at 1 when a name is removed and added again (remove destroys the KV
metadata: the replicas' OpenBao policy may not destroy single versions), so each add stamps a
fresh ``generation`` into the definition: (definition, version) then names one lifetime's secret,
which is what a replica's mirror compares to know what to reload and to check what it read.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg

from clavis_mcp.vault.auth.registry import from_json as auth_from_json
from clavis_mcp.vault.errors import ApiRefused, BaoRefused, InvalidService
from clavis_mcp.vault.hosts import parse_host_rule
from clavis_mcp.vault.secret import Secret
from clavis_mcp.vault.service import Service, service_definition, validated

from .bao import Bao
from .config import Names

SECRET_FIELD = "credential"
GENERATION = "generation"  # the definition's key for the lifetime an add starts (see the module docstring)
LOCK_WAIT = 0.5  # seconds a writer waits for a name another writer holds before a 503
LOCK_POLL = 0.02


def service_to_json(service: Service) -> dict[str, Any]:
    """The local vault's stored form of a service, with its name."""
    return {"name": service.name, **service_definition(service)}


def service_from_json(data: Any) -> Service:
    """A validated service from a definition; ApiRefused(400) saying what is wrong otherwise."""
    try:
        if not isinstance(data, dict):
            raise ValueError("the definition must be a JSON object")
        return validated(
            Service(
                name=str(data["name"]),
                connector=str(data.get("connector", "generic")),
                auth=auth_from_json(data["auth"]),
                hosts=tuple(parse_host_rule(str(rule)) for rule in data["hosts"]),
                local=bool(data.get("local", False)),
                allow_http=bool(data.get("allow_http", False)),
                reveal=data.get("reveal", "masked"),
                methods=tuple(data.get("methods", ())),
                path_prefixes=tuple(data.get("path_prefixes", ())),
                created_at=float(data.get("created_at") or time.time()),
                expires_at=data.get("expires_at"),
                rotated_at=data.get("rotated_at"),
            )
        )
    except KeyError as exc:
        raise ApiRefused(400, f"the service definition lacks {exc.args[0]!r}") from None
    except (ValueError, TypeError, InvalidService) as exc:
        raise ApiRefused(400, f"invalid service definition: {exc}") from None


def service_lock_key(name: str) -> str:
    """The PostgreSQL advisory lock key (through ``hashtext``) of one service's writers: TeamStore's
    add, rotate and remove, and an OAuth refresh's writes (team/oauth.py), so they exclude each other."""
    return f"clavis-service:{name}"


def take_name_lock(conn: psycopg.Connection[Any], name: str, *, transaction: bool = False) -> None:
    """Take ``name``'s lock (to the end of the transaction with ``transaction``, else until unlocked),
    waiting at most LOCK_WAIT: the writers run on the replica's event loop, and a lock held for long
    elsewhere (a remove waiting on a slow OpenBao) would stall every request of this worker. A busy
    name is a 503 the admin retries."""
    key = (service_lock_key(name),)
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        if transaction:
            row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", key).fetchone()
        else:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", key).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() >= deadline:
            raise ApiRefused(503, f"another change to {name!r} is under way; try again")
        time.sleep(LOCK_POLL)


@dataclass(frozen=True, slots=True)
class StoredService:
    definition: dict[str, Any]
    secret_version: int
    oauth_expires_at: float | None = None  # an OAuth service's access-token expiry (epoch seconds)


class TeamStore:
    def __init__(self, conn: psycopg.Connection[Any], bao: Bao, names: Names) -> None:
        self._conn, self._bao, self._names = conn, bao, names

    def use(self, conn: psycopg.Connection[Any]) -> None:
        """Go on with a new connection (the replica replaced a broken one)."""
        self._conn = conn

    def version(self) -> int:
        row = self._conn.execute("SELECT value FROM team_meta WHERE key = 'services_version'").fetchone()
        return int(row[0]) if row else 0

    def services(self) -> dict[str, StoredService]:
        rows = self._conn.execute(
            "SELECT s.name, s.definition, s.secret_version, o.expires_at FROM services s "
            "LEFT JOIN oauth o ON o.service = s.name"
        ).fetchall()
        return {name: StoredService(definition, version, expiry) for name, definition, version, expiry in rows}

    def secret(self, name: str, version: int) -> Secret | None:
        """Exactly the KV version a row records, never "latest": a version no row points at (a lost
        race's write, a crash between OpenBao and PostgreSQL) is never injected."""
        found = self._bao.kv_read(self._names.kv, self._names.secret_path(name), version)
        return Secret(found[0][SECRET_FIELD]) if found and SECRET_FIELD in found[0] else None

    @contextmanager
    def _name_lock(self, name: str) -> Iterator[None]:
        """Serialise, across every replica, the writers of one service: add, rotate and remove each
        check PostgreSQL, write or destroy in OpenBao and write PostgreSQL again, and two of them
        interleaved would mix one admin's definition with another's secret. A session lock, so it
        also spans the OpenBao step that follows remove's transaction."""
        take_name_lock(self._conn, name)
        try:
            yield
        finally:
            with suppress(psycopg.Error):  # a broken connection has released the lock already
                self._conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (service_lock_key(name),))

    def _write_secret(self, name: str, secret: Secret, cas: int) -> int:
        """A check-and-set write: a writer outside the lock (an OAuth refresh) turns it into a 409."""
        try:
            return self._bao.kv_write(
                self._names.kv, self._names.secret_path(name), {SECRET_FIELD: secret.reveal()}, cas=cas
            )
        except BaoRefused as exc:
            if exc.status != 400:  # OpenBao's answer to a check-and-set mismatch
                raise
            raise ApiRefused(409, f"the credential of {name!r} changed while it was being written; try again") from None

    def add(self, service: Service, secret: Secret, extra: dict[str, Any] | None = None) -> None:
        """``extra``: team-only parts of the definition the local vault has no field for (a budget).

        All or nothing per name across replicas: the loser of two concurrent adds gets a 409 and its
        secret is written nowhere. Versions left at the path with no row (a crash after the write)
        are destroyed first, so the new service starts at version 1 with cas=0, under a generation no
        earlier service of that name had (whatever the posted definition says)."""
        with self._name_lock(service.name):
            if self._conn.execute("SELECT 1 FROM services WHERE name = %s", (service.name,)).fetchone():
                raise ApiRefused(
                    409, f"a service named {service.name!r} already exists; remove it first or pick another name"
                )
            self._bao.kv_destroy(self._names.kv, self._names.secret_path(service.name))
            version = self._write_secret(service.name, secret, cas=0)
            with self._conn.transaction():
                self._conn.execute(
                    "INSERT INTO services (name, definition, secret_version) VALUES (%s, %s, %s)",
                    (
                        service.name,
                        json.dumps({**service_to_json(service), **(extra or {}), GENERATION: secrets.token_hex(16)}),
                        version,
                    ),
                )
                self._bump()

    def rotate(self, name: str, secret: Secret) -> None:
        """The check-and-set names the version current under the lock, not the row's: a version a
        crash left behind would otherwise refuse every rotation from then on."""
        with self._name_lock(name):
            row = self._conn.execute("SELECT definition FROM services WHERE name = %s", (name,)).fetchone()
            if row is None:
                raise ApiRefused(404, f"unknown service {name!r}")
            current = self._bao.kv_version(self._names.kv, self._names.secret_path(name))
            version = self._write_secret(name, secret, cas=current)
            definition = {**row[0], "rotated_at": time.time()}
            with self._conn.transaction():
                self._conn.execute(
                    "UPDATE services SET definition = %s, secret_version = %s, updated_at = now() WHERE name = %s",
                    (json.dumps(definition), version, name),
                )
                self._bump()

    def remove(self, name: str) -> None:
        """Under the name's lock until the secrets are destroyed: an add of the same name waits, so
        this destroy cannot reach the new service's credential."""
        with self._name_lock(name):
            with self._conn.transaction():
                if self._conn.execute("DELETE FROM services WHERE name = %s", (name,)).rowcount == 0:
                    raise ApiRefused(404, f"unknown service {name!r}")
                self._conn.execute("DELETE FROM rate_limits WHERE service = %s", (name,))
                self._bump()
            self._bao.kv_destroy(self._names.kv, self._names.secret_path(name))
            self._bao.kv_destroy(self._names.kv, f"oauth/{name}")

    def _bump(self) -> None:
        self._conn.execute("UPDATE team_meta SET value = value + 1 WHERE key = 'services_version'")
        self._conn.execute("NOTIFY clavis_services")

    # -- shared rate-limit state and use -----------------------------------------------------------

    def record_rate_limits(self, name: str, headers: dict[str, str], observed_at: float) -> None:
        self._conn.execute(
            "INSERT INTO rate_limits (service, headers, observed_at) VALUES (%s, %s, %s) ON CONFLICT (service) "
            "DO UPDATE SET headers = excluded.headers, observed_at = excluded.observed_at "
            "WHERE rate_limits.observed_at <= excluded.observed_at",
            (name, json.dumps(headers), observed_at),
        )

    def rate_limits(self, name: str) -> tuple[dict[str, str], float] | None:
        row = self._conn.execute("SELECT headers, observed_at FROM rate_limits WHERE service = %s", (name,)).fetchone()
        return (dict(row[0]), float(row[1])) if row else None

    def definition(self, name: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT definition FROM services WHERE name = %s", (name,)).fetchone()
        return dict(row[0]) if row else None

    def touch(self, name: str) -> None:
        """Note a use; at most one write per service every few seconds, not one per request."""
        self._conn.execute(
            "UPDATE services SET last_used = now() WHERE name = %s "
            "AND (last_used IS NULL OR last_used < now() - interval '5 seconds')",
            (name,),
        )

    def last_used(self, name: str) -> float | None:
        row = self._conn.execute("SELECT last_used FROM services WHERE name = %s", (name,)).fetchone()
        return row[0].timestamp() if row and row[0] else None
