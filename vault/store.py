"""The vault: services and their encrypted secrets in one SQLite file.

SQLite in WAL mode gives what several processes at once (the MCP server, the standalone
proxy, the CLI) need: atomic transactions, readers that never block the writer, and a
file that a crash leaves in the old or the new state.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .crypto import DataKey, associated_data
from .errors import DuplicateService, UnknownService, VaultCorrupted, VaultError, VaultNotFound
from .hosts import canonical_host, parse_host_rule, rules_overlap
from .keyfile import create_keyfile, load_keyfile
from .paths import ensure_private, make_private_dir
from .secret import Secret
from .service import AuthSpec, Service

DB_NAME = "vault.db"
SCHEMA_VERSION = "1"
SECRET_FIELD = "credential"
_KEY_CHECK = b"clavis-mcp key check"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
    service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
    field TEXT NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (service, field)
);
"""


@dataclass(frozen=True)
class Snapshot:
    """Services with their decrypted secrets, as the proxy sees them between two vault changes."""

    services: tuple[Service, ...]
    secrets: dict[str, Secret]

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise UnknownService(name, [s.name for s in self.services])

    def owner_of(self, host: str, port: int, scheme: str) -> Service | None:
        """The service whose host rules cover this destination; exact rules beat wildcards."""
        try:
            host = canonical_host(host)
        except ValueError:
            return None
        owners = [s for s in self.services if s.owns(host, port, scheme)]
        if len(owners) > 1:
            exact = [s for s in owners if any(not r.wildcard and r.host == host for r in s.hosts)]
            owners = exact or owners
        return owners[0] if len(owners) == 1 else None


class Vault:
    """Open with :meth:`open`, create with :meth:`create`. Safe to share within one process."""

    def __init__(self, home: Path, conn: sqlite3.Connection, key: DataKey, vault_id: str) -> None:
        self.home = home
        self._conn = conn
        self._key = key
        self.vault_id = vault_id
        self._lock = threading.RLock()
        self._snapshot: tuple[int, Snapshot] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, home: Path) -> Vault:
        make_private_dir(home)
        db_path = home / DB_NAME
        if db_path.exists():
            raise VaultError(f"a vault already exists at {home}; use it, or choose another CLAVIS_HOME")
        raw_key = create_keyfile(home)
        key = DataKey(raw_key)
        vault_id = uuid.uuid4().hex
        conn = _connect(db_path)
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("vault_id", vault_id),
                    ("key_store", "keyfile"),
                    ("created_at", repr(time.time())),
                    ("key_check", key.seal(_KEY_CHECK, associated_data(vault_id, "", "key_check")).hex()),
                ],
            )
        return cls(home, conn, key, vault_id)

    @classmethod
    def open(cls, home: Path) -> Vault:
        db_path = home / DB_NAME
        if not db_path.exists():
            raise VaultNotFound(f"no vault at {home}; create one with: clavis-mcp init")
        ensure_private(home)
        ensure_private(db_path)
        key = DataKey(load_keyfile(home))
        try:
            conn = _connect(db_path)
        except sqlite3.DatabaseError as exc:
            raise VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup") from None
        try:
            vault_id = _check_meta(conn, key, db_path)
        except BaseException:
            conn.close()
            raise
        return cls(home, conn, key, vault_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- services ------------------------------------------------------------------------------

    def list_services(self) -> list[Service]:
        with self._lock:
            rows = self._conn.execute("SELECT name, definition FROM services ORDER BY name").fetchall()
        return [_service_from_json(name, definition) for name, definition in rows]

    def get_service(self, name: str) -> Service:
        with self._lock:
            row = self._conn.execute("SELECT definition FROM services WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownService(name, [s.name for s in self.list_services()])
        return _service_from_json(name, row[0])

    def add_service(self, service: Service, secret: Secret) -> None:
        with self.transaction() as conn:
            for other in self.list_services():
                if other.name == service.name:
                    raise DuplicateService(
                        f"a service named {service.name!r} already exists; remove it first or pick another name"
                    )
                for mine in service.hosts:
                    for theirs in other.hosts:
                        if rules_overlap(mine, theirs):
                            raise DuplicateService(
                                f"host {mine} overlaps host {theirs} of service {other.name!r}; "
                                "a destination must belong to one service"
                            )
            conn.execute(
                "INSERT INTO services (name, definition, updated_at) VALUES (?, ?, ?)",
                (service.name, _service_to_json(service), time.time()),
            )
            self._write_secret(conn, service.name, SECRET_FIELD, secret)

    def remove_service(self, name: str) -> None:
        with self.transaction() as conn:
            deleted = conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount
            conn.execute("DELETE FROM secrets WHERE service = ?", (name,))
        if not deleted:
            raise UnknownService(name, [s.name for s in self.list_services()])

    def secret(self, name: str, field: str = SECRET_FIELD) -> Secret:
        with self._lock:
            row = self._conn.execute(
                "SELECT blob FROM secrets WHERE service = ? AND field = ?", (name, field)
            ).fetchone()
        if row is None:
            raise UnknownService(name, [s.name for s in self.list_services()])
        plain = self._key.open(row[0], associated_data(self.vault_id, name, field), f"the secret of {name!r}")
        return Secret(plain.decode("utf-8"))

    def snapshot(self) -> Snapshot:
        """Services and secrets, decrypted once and reloaded only when any process changed the vault."""
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if self._snapshot is None or self._snapshot[0] != version:
                services = tuple(self.list_services())
                secrets = {s.name: self.secret(s.name) for s in services}
                self._snapshot = (version, Snapshot(services, secrets))
            return self._snapshot[1]

    # -- for sibling modules (agents, OAuth tokens, audit key) that keep their own tables ------

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt with the vault key, bound to this vault and ``context`` (e.g. ``"agent:ci"``)."""
        return self._key.seal(plaintext, associated_data(self.vault_id, "", context))

    def unseal(self, blob: bytes, context: str, what: str) -> bytes:
        return self._key.open(blob, associated_data(self.vault_id, "", context), what)

    def set_secret(self, name: str, field: str, secret: Secret) -> None:
        """Store or replace one secret field of an existing service."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone() is None:
                raise UnknownService(name, [s.name for s in self.list_services()])
            self._write_secret(conn, name, field, secret)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: one writer at a time across processes; commit or roll back whole."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()
            self._snapshot = None

    def _write_secret(self, conn: sqlite3.Connection, service: str, field: str, secret: Secret) -> None:
        blob = self._key.seal(secret.reveal().encode("utf-8"), associated_data(self.vault_id, service, field))
        conn.execute("INSERT OR REPLACE INTO secrets (service, field, blob) VALUES (?, ?, ?)", (service, field, blob))


def _check_meta(conn: sqlite3.Connection, key: DataKey, db_path: Path) -> str:
    """Return the vault id after checking the format and that ``key`` is this vault's key."""
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup") from None
    if meta.get("schema_version") != SCHEMA_VERSION or "vault_id" not in meta:
        raise VaultCorrupted(f"the vault file {db_path} has an unknown format; restore it from a backup")
    vault_id = meta["vault_id"]
    try:
        check = bytes.fromhex(meta.get("key_check", ""))
    except ValueError:
        check = b""
    key.open(check, associated_data(vault_id, "", "key_check"), "the vault key check")
    return vault_id


def _connect(db_path: Path) -> sqlite3.Connection:
    if not db_path.exists():
        db_path.touch(mode=0o600)
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
    except BaseException:
        conn.close()
        raise
    return conn


def _service_to_json(service: Service) -> str:
    return json.dumps(
        {
            "connector": service.connector,
            "auth": {"kind": service.auth.kind, "name": service.auth.name, "template": service.auth.template},
            "hosts": [str(rule) for rule in service.hosts],
            "local": service.local,
            "allow_http": service.allow_http,
            "reveal": service.reveal,
            "methods": list(service.methods),
            "path_prefixes": list(service.path_prefixes),
            "created_at": service.created_at,
            "expires_at": service.expires_at,
        },
        sort_keys=True,
    )


def _service_from_json(name: str, definition: str) -> Service:
    try:
        data = json.loads(definition)
        return Service(
            name=name,
            connector=data["connector"],
            auth=AuthSpec(**data["auth"]),
            hosts=tuple(parse_host_rule(rule) for rule in data["hosts"]),
            local=bool(data["local"]),
            allow_http=bool(data["allow_http"]),
            reveal=data["reveal"],
            methods=tuple(data.get("methods", ())),
            path_prefixes=tuple(data.get("path_prefixes", ())),
            created_at=float(data["created_at"]),
            expires_at=data["expires_at"],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultCorrupted(f"the definition of service {name!r} is damaged ({exc!r}); remove and re-add it") from None
