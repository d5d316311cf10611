"""The vault: services and their encrypted secrets in one SQLite file.

SQLite in WAL mode gives what several processes at once (the MCP server, the standalone
proxy, the CLI) need: atomic transactions, readers that never block the writer, and a
file that a crash leaves in the old or the new state. Every change is one ``BEGIN
IMMEDIATE`` transaction, so concurrent writers queue instead of losing each other's work.

The data key is stored wrapped in the ``meta`` table by the key store's key (see
:mod:`vault.keystore`); ``docs/vault-format.md`` describes every row and byte.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from .auth.registry import from_json as auth_from_json
from .errors import (
    DuplicateService,
    InvalidService,
    UnknownService,
    VaultCorrupted,
    VaultError,
    VaultLocked,
    VaultNotFound,
    WrongKey,
)
from .hosts import HostRule, canonical_host, parse_host_rule, rules_overlap
from .keys.crypto import DataKey, associated_data, wrap_context
from .keys.keyfile import KeyFileStore
from .keys.keystore import AskPassphrase, KeyStore, Params, key_store
from .paths import ensure_private, make_private_dir
from .secret import FingerprintKey, Secret, key_secrets_made_outside_a_vault
from .service import Service, validated

DB_NAME = "vault.db"
SCHEMA_VERSION = "2"
SECRET_FIELD = "credential"
FINGERPRINT_KEY_CONTEXT = "fingerprint-key"  # HKDF info of the fingerprint key, see docs/vault-format.md

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
INSERT OR IGNORE INTO meta (key, value) VALUES ('services_version', '0');
"""
# Any write to services or secrets (or a versioned sibling table, see Vault.ensure_table), by any
# module or process, bumps one counter: snapshots reload on that, not on every write to the file
# (rate limits, settings, OAuth leases and the like are written while requests flow).
_BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'services_version'"
_EVENTS = ("INSERT", "UPDATE", "DELETE")


def _bump_trigger(table: str, event: str) -> str:
    return f"CREATE TRIGGER IF NOT EXISTS bump_{table}_{event.lower()} AFTER {event} ON {table} BEGIN {_BUMP}; END"


_SCHEMA += "".join(f"{_bump_trigger(table, event)};\n" for table in ("services", "secrets") for event in _EVENTS)


@dataclass(frozen=True)
class Snapshot:
    """Services with their decrypted secrets, as the proxy sees them between two vault changes.

    Indexed once per snapshot (by name, by exact host, by wildcard domain), so the per-request
    lookup costs the same with ten services or ten thousand.
    """

    services: tuple[Service, ...]
    secrets: dict[str, Secret]
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_name: dict[str, Service] = field(init=False, repr=False, compare=False)
    _by_host: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)
    _by_domain: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_host: dict[str, list[Service]] = {}
        by_domain: dict[str, list[Service]] = {}
        for service in self.services:
            for rule in service.hosts:
                index = by_domain if rule.wildcard else by_host
                bucket = index.setdefault(rule.host, [])
                if not bucket or bucket[-1].name != service.name:
                    bucket.append(service)
        object.__setattr__(self, "_by_name", {s.name: s for s in self.services})
        object.__setattr__(self, "_by_host", {h: tuple(v) for h, v in by_host.items()})
        object.__setattr__(self, "_by_domain", {d: tuple(v) for d, v in by_domain.items()})

    def derived[T](self, key: str, build: Callable[[], T]) -> T:
        """A view of a sibling module's versioned table (``Vault.ensure_table(..., versioned=True)``),
        built on first use and kept as long as this snapshot: any change to that table makes a
        new snapshot, so the proxy reads such a table once per change, not once per request."""
        try:
            return cast(T, self._derived[key])
        except KeyError:
            value = self._derived[key] = build()
            return value

    def service(self, name: str) -> Service:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownService(name, sorted(self._by_name)) from None

    def owners(self, host: str, port: int, scheme: str) -> tuple[Service, ...]:
        """Every service with a host rule covering this destination, whatever the path."""
        try:
            host = canonical_host(host)
        except ValueError:
            return ()
        candidates = list(self._by_host.get(host, ()))
        labels = host.split(".")
        for i in range(1, len(labels)):
            candidates.extend(self._by_domain.get(".".join(labels[i:]), ()))
        found = {s.name: s for s in candidates if s.owns_canonical(host, port, scheme)}
        return tuple(sorted(found.values(), key=lambda s: s.name))

    def owner_of(self, host: str, port: int, scheme: str, path: str | None = None) -> Service | None:
        """The one service this destination belongs to, or None if none or no single best.

        With ``path`` (already normalised), services sharing a host are told apart by their path
        prefixes: the longest covering prefix wins. Then an exact host rule beats a wildcard.
        Registration refuses two services that could tie, so None here means "no owner".
        """
        owners = self.owners(host, port, scheme)
        if path is not None:
            ranked = [(len(p), s) for s in owners if (p := s.prefix_for(path)) is not None]
            best = max((rank for rank, _ in ranked), default=-1)
            owners = tuple(s for rank, s in ranked if rank == best)
        if len(owners) > 1:
            canonical = canonical_host(host)
            exact = [s for s in owners if any(not r.wildcard and r.host == canonical for r in s.hosts)]
            owners = tuple(exact) or owners
        return owners[0] if len(owners) == 1 else None


@dataclass(frozen=True, slots=True)
class KeyStoreInfo:
    """Which key store protects a vault, for `doctor` and `init`; holds no secret."""

    kind: str
    description: str


def read_key_store(home: Path) -> KeyStoreInfo:
    """Which key store protects the vault at ``home``, read from its header without unlocking it."""
    db_path = home / DB_NAME
    if not db_path.exists():
        raise VaultNotFound(f"no vault at {home}; create one with: clavis-mcp init")
    try:
        conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup") from None
    try:
        kind, params = _key_meta(_read_meta(conn, db_path), db_path)
    finally:
        conn.close()
    return KeyStoreInfo(kind, key_store(kind).describe(home, params))


class Vault:
    """Open with :meth:`open`, create with :meth:`create`. Safe to share within one process."""

    def __init__(self, home: Path, conn: sqlite3.Connection, key: DataKey, vault_id: str) -> None:
        self.home = home
        self._conn = conn
        self._key = key
        self.vault_id = vault_id
        self._fingerprint_key = FingerprintKey(key.derive(associated_data(vault_id, "", FINGERPRINT_KEY_CONTEXT)))
        key_secrets_made_outside_a_vault(self._fingerprint_key)
        self._lock = threading.RLock()
        self._snapshot: tuple[int | None, str | None, Snapshot] | None = None
        self._tables: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, home: Path, store: KeyStore | None = None) -> Vault:
        """Create a vault whose data key is wrapped by ``store`` (default: a key file).

        The database is written under a temporary name and linked into place in one step, so
        a crash or a concurrent `init` never leaves a half-made vault behind.
        """
        store = store or KeyFileStore()
        make_private_dir(home)
        db_path = home / DB_NAME
        if db_path.exists():
            raise VaultError(f"a vault already exists at {home}; use it, or choose another CLAVIS_HOME")
        vault_id = uuid.uuid4().hex
        key = DataKey.generate()
        kek, params = store.create(home, vault_id)
        tmp = home / f".{DB_NAME}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with closing(_connect(tmp)) as conn, conn:
                conn.executescript(_SCHEMA)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("vault_id", vault_id),
                        ("created_at", repr(time.time())),
                        *_key_rows(key, kek, store.kind, params, vault_id),
                    ],
                )
            try:
                db_path.hardlink_to(tmp)
            except FileExistsError:
                raise VaultError(f"a vault was just created at {home} by another process; use it") from None
        except BaseException:
            store.discard(home, params)
            raise
        finally:
            for path in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                path.unlink(missing_ok=True)
        return cls(home, _connect(db_path), key, vault_id)

    @classmethod
    def open(cls, home: Path, *, ask_passphrase: AskPassphrase | None = None) -> Vault:
        """Open the vault at ``home``; ``ask_passphrase`` is called only for a passphrase vault
        when ``CLAVIS_PASSPHRASE`` is not set."""
        db_path = home / DB_NAME
        if not db_path.exists():
            raise VaultNotFound(f"no vault at {home}; create one with: clavis-mcp init")
        ensure_private(home)
        for path in (db_path, home / f"{DB_NAME}-wal", home / f"{DB_NAME}-shm"):
            ensure_private(path)
        try:
            conn = _connect(db_path)
        except sqlite3.DatabaseError as exc:
            raise VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup") from None
        try:
            meta = _read_meta(conn, db_path)
            vault_id = meta["vault_id"]
            kind, params = _key_meta(meta, db_path)
            kek = key_store(kind, ask_passphrase).load(home, vault_id, params)
            key = _unwrap(meta, kek, kind, vault_id)
        except BaseException:
            conn.close()
            raise
        return cls(home, conn, key, vault_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- key store -----------------------------------------------------------------------------

    def key_store_info(self) -> KeyStoreInfo:
        return read_key_store(self.home)

    def rekey(self, new: KeyStore) -> KeyStoreInfo:
        """Re-wrap the data key under a new key store (or a new passphrase), in one transaction.

        New key material is made first; the header switches to it at commit; the old material
        is removed only after the commit. A crash leaves the old or the new header, and at worst
        an unused key file or keychain entry.
        """
        kek, params = new.create(self.home, self.vault_id)  # may prompt: outside the write lock
        try:
            with self.transaction() as conn:
                old_kind, old_params = _key_meta(_read_meta(conn, self.home / DB_NAME), self.home / DB_NAME)
                conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    _key_rows(self._key, kek, new.kind, params, self.vault_id),
                )
        except BaseException:
            new.discard(self.home, params)
            raise
        if (old_kind, old_params) != (new.kind, params):
            key_store(old_kind).discard(self.home, old_params)
        return self.key_store_info()

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
        self.add_services([(service, secret)])

    def add_services(self, entries: list[tuple[Service, Secret]]) -> None:
        """Add several services in one transaction: all of them, or (on any refusal) none."""
        with self.transaction() as conn:
            others = _HostIndex(self.list_services())
            for entry, secret in entries:
                service = validated(entry)
                if service.name in others.names:
                    raise DuplicateService(
                        f"a service named {service.name!r} already exists; remove it first or pick another name"
                    )
                _refuse_conflicts(service, others)
                conn.execute(
                    "INSERT INTO services (name, definition, updated_at) VALUES (?, ?, ?)",
                    (service.name, _service_to_json(service), time.time()),
                )
                self._write_secret(conn, service.name, SECRET_FIELD, secret)
                others.add(service)

    def update_service(self, service: Service) -> Service:
        """Replace the non-secret definition of an existing service (its secrets stay)."""
        with self.transaction() as conn:
            current = self.get_service(service.name)
            service = replace(validated(service), created_at=current.created_at, rotated_at=current.rotated_at)
            _refuse_conflicts(service, _HostIndex(self.list_services()))
            conn.execute(
                "UPDATE services SET definition = ?, updated_at = ? WHERE name = ?",
                (_service_to_json(service), time.time(), service.name),
            )
        return service

    def rotate_secret(self, name: str, secret: Secret) -> Service:
        """Replace the credential of ``name``; the old ciphertext is overwritten, not kept."""
        with self.transaction() as conn:
            service = replace(self.get_service(name), rotated_at=time.time())
            conn.execute(
                "UPDATE services SET definition = ?, updated_at = ? WHERE name = ?",
                (_service_to_json(service), time.time(), name),
            )
            self._write_secret(conn, name, SECRET_FIELD, secret)
        self._checkpoint()
        return service

    def remove_service(self, name: str) -> None:
        with self.transaction() as conn:
            deleted = conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount
            conn.execute("DELETE FROM secrets WHERE service = ?", (name,))
        if not deleted:
            raise UnknownService(name, [s.name for s in self.list_services()])
        self._checkpoint()

    def secret(self, name: str, field: str = SECRET_FIELD) -> Secret:
        with self._lock:
            row = self._conn.execute(
                "SELECT blob FROM secrets WHERE service = ? AND field = ?", (name, field)
            ).fetchone()
        if row is None:
            raise UnknownService(name, [s.name for s in self.list_services()])
        plain = self._key.open(row[0], associated_data(self.vault_id, name, field), f"the secret of {name!r}")
        return Secret(plain.decode("utf-8"), self._fingerprint_key)

    def keyed(self, value: Secret | str) -> Secret:
        """``value`` as a Secret fingerprinted with this vault's key, as the secrets it returns are.

        A Secret made outside a vault (a token a provider just sent) is keyed with whichever vault
        the process opened last; a fingerprint this vault stores, or compares with one of its own
        secrets', must not depend on that (principle 42's keyed fingerprints, one key per vault)."""
        return Secret(value.reveal() if isinstance(value, Secret) else value, self._fingerprint_key)

    def snapshot(self) -> Snapshot:
        """Services and secrets, decrypted once and reloaded only when a service or secret changed.

        ``PRAGMA data_version`` (free) says whether another connection wrote anything; only then
        is the ``services_version`` counter, which triggers bump, read to see whether it matters.
        """
        with self._lock:
            data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if self._snapshot is not None and self._snapshot[0] == data_version:
                return self._snapshot[2]
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'services_version'").fetchone()
            services_version = row[0] if row else None
            if self._snapshot is None or services_version is None or self._snapshot[1] != services_version:
                services = tuple(self.list_services())
                secrets = {s.name: self.secret(s.name) for s in services}
                snapshot = Snapshot(services, secrets)
            else:
                snapshot = self._snapshot[2]
            self._snapshot = (data_version, services_version, snapshot)
            return snapshot

    # -- for sibling modules (agents, OAuth tokens, audit key) that keep their own tables ------

    def ensure_table(self, name: str, ddl: str, *, versioned: bool = False) -> None:
        """Create a sibling module's table on its first use; asked once per connection, since
        several callers are on the proxy's per-request path.

        ``versioned``: every change to the table bumps ``services_version`` like a change to a
        service does, so :meth:`Snapshot.derived` views of it stay current. Its writes must go
        through :meth:`transaction` (as every write of the vault's does)."""
        if name in self._tables:
            return
        statements = [ddl, *(_bump_trigger(name, event) for event in _EVENTS)] if versioned else [ddl]
        last = f"bump_{name}_delete" if versioned else name
        if not self.query("SELECT 1 FROM sqlite_master WHERE name = ?", (last,)):
            with self.transaction() as conn:
                for statement in statements:
                    conn.execute(statement)
        self._tables.add(name)

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
            if self._snapshot is not None:
                # Our own writes leave data_version as it is: have the next snapshot() compare the
                # services counter instead, so a write to another table (rate limits, the audit
                # checkpoint) does not cost a reload and a decryption of every secret.
                self._snapshot = (None, *self._snapshot[1:])

    def _write_secret(self, conn: sqlite3.Connection, service: str, field: str, secret: Secret) -> None:
        blob = self._key.seal(secret.reveal().encode("utf-8"), associated_data(self.vault_id, service, field))
        conn.execute("INSERT OR REPLACE INTO secrets (service, field, blob) VALUES (?, ?, ?)", (service, field, blob))

    def _checkpoint(self) -> None:
        """Move committed pages out of the WAL so a replaced ciphertext does not linger there.

        Best effort: a reader in another process may hold old pages; they go at its next checkpoint.
        """
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


class _HostIndex:
    """Services by host rule, so a new rule is compared with the few that could overlap it
    rather than with every service (adding to a vault of 10,000 stays linear)."""

    def __init__(self, services: list[Service]) -> None:
        self.names: set[str] = set()
        self._exact: dict[str, list[Service]] = {}
        self._wild: dict[str, list[Service]] = {}
        for service in services:
            self.add(service)

    def add(self, service: Service) -> None:
        self.names.add(service.name)
        for rule in service.hosts:
            (self._wild if rule.wildcard else self._exact).setdefault(rule.host, []).append(service)

    def candidates(self, rule: HostRule) -> list[Service]:
        labels = rule.host.split(".")
        suffixes = [".".join(labels[i:]) for i in range(0 if rule.wildcard else 1, len(labels))]
        found = list(self._exact.get(rule.host, ()))
        for suffix in suffixes:  # wildcards covering this host (or this wildcard's domain)
            found.extend(self._wild.get(suffix, ()))
        if rule.wildcard:  # hosts and wildcards inside this wildcard's domain
            inside = "." + rule.host
            for index in (self._exact, self._wild):
                found.extend(s for host, services in index.items() if host.endswith(inside) for s in services)
        return found


def _refuse_conflicts(service: Service, others: _HostIndex) -> None:
    """Two services may share a host only if their path prefixes differ (the longest then wins)."""
    for mine in service.hosts:
        for other in others.candidates(mine):
            if other.name == service.name:
                continue
            shared = sorted(set(service.effective_prefixes) & set(other.effective_prefixes))
            if not shared:
                continue
            for theirs in other.hosts:
                if rules_overlap(mine, theirs):
                    raise DuplicateService(
                        f"host {mine} overlaps host {theirs} of service {other.name!r} on path prefix {shared[0]}; "
                        "a destination must belong to one service: use another host, or distinct --path-prefix"
                    )


def _key_rows(key: DataKey, kek: bytes, kind: str, params: Params, vault_id: str) -> list[tuple[str, str]]:
    wrapped = key.wrap(kek, associated_data(vault_id, "", wrap_context(kind)))
    return [
        ("key_store", kind),
        ("key_params", json.dumps(params, sort_keys=True)),
        ("wrapped_key", wrapped.hex()),
    ]


def _read_meta(conn: sqlite3.Connection, db_path: Path) -> dict[str, str]:
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        raise VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup") from None
    if meta.get("schema_version") == "1":
        raise VaultCorrupted(
            f"the vault {db_path} was made by a development version (format 1); "
            "create a new one with clavis-mcp init in an empty CLAVIS_HOME and re-add the services"
        )
    if meta.get("schema_version") != SCHEMA_VERSION or "vault_id" not in meta:
        raise VaultCorrupted(f"the vault file {db_path} has an unknown format; restore it from a backup")
    return meta


def _key_meta(meta: dict[str, str], db_path: Path) -> tuple[str, Params]:
    try:
        params = json.loads(meta["key_params"])
        if not isinstance(params, dict):
            raise ValueError("not an object")
        return meta["key_store"], params
    except (KeyError, ValueError) as exc:
        raise VaultCorrupted(f"the key store header of {db_path} is damaged ({exc!r}); restore a backup") from None


def _unwrap(meta: dict[str, str], kek: bytes, kind: str, vault_id: str) -> DataKey:
    try:
        wrapped = bytes.fromhex(meta.get("wrapped_key", ""))
        return DataKey.unwrap(kek, wrapped, associated_data(vault_id, "", wrap_context(kind)))
    except (ValueError, WrongKey):
        if kind == "passphrase":
            raise VaultLocked("wrong passphrase: the vault stays locked; try again") from None
        raise VaultCorrupted(
            f"the key from the {kind} does not open this vault (key check failed): the key or the vault "
            "header was replaced or damaged; restore both from the same backup"
        ) from None


def _connect(db_path: Path) -> sqlite3.Connection:
    if not db_path.exists():
        db_path.touch(mode=0o600)
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA secure_delete=ON")
        # WAL with NORMAL keeps every commit atomic and crash-safe for the process; it skips the
        # fsync per commit, which the audit checkpoint would otherwise pay on every request.
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _service_to_json(service: Service) -> str:
    return json.dumps(
        {
            "connector": service.connector,
            "auth": service.auth.to_json(),
            "hosts": [str(rule) for rule in service.hosts],
            "local": service.local,
            "allow_http": service.allow_http,
            "reveal": service.reveal,
            "methods": list(service.methods),
            "path_prefixes": list(service.path_prefixes),
            "created_at": service.created_at,
            "expires_at": service.expires_at,
            "rotated_at": service.rotated_at,
        },
        sort_keys=True,
    )


def _service_from_json(name: str, definition: str) -> Service:
    try:
        data = json.loads(definition)
        return Service(
            name=name,
            connector=data["connector"],
            auth=auth_from_json(data["auth"]),
            hosts=tuple(parse_host_rule(rule) for rule in data["hosts"]),
            local=bool(data["local"]),
            allow_http=bool(data["allow_http"]),
            reveal=data["reveal"],
            methods=tuple(data.get("methods", ())),
            path_prefixes=tuple(data.get("path_prefixes", ())),
            created_at=float(data["created_at"]),
            expires_at=data["expires_at"],
            rotated_at=data.get("rotated_at"),
        )
    except (ValueError, KeyError, TypeError, InvalidService) as exc:
        raise VaultCorrupted(f"the definition of service {name!r} is damaged ({exc!r}); remove and re-add it") from None
