"""The vault: services and their encrypted secrets, kept behind the storage protocol.

Everything secret is sealed here, with the data key, before it reaches the :class:`Store`
(``vault/storage/``): the local vault's is one SQLite file (``storage/sqlite.py``), the unit
tests' is in memory. Every change is one atomic batch of the store, so concurrent writers queue
instead of losing each other's work.

The data key is stored wrapped in the store's header by the key store's key (see
:mod:`vault.keys.keystore`); ``docs/vault-format.md`` describes every row and byte.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import InitVar, dataclass, field, replace
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
from .hosts import canonical_host, parse_host_rule
from .keys.crypto import DataKey, associated_data, wrap_context
from .keys.keyfile import KeyFileStore
from .keys.keystore import AskPassphrase, KeyStore, Params, key_store
from .paths import ensure_private, make_private_dir
from .secret import FingerprintKey, Secret, key_secrets_made_outside_a_vault
from .service import Service, service_definition, validated
from .storage.memory import MemoryStore
from .storage.protocol import Batch, Store
from .storage.sqlite import SQLiteStore, read_header

DB_NAME = "vault.db"
SECRET_FIELD = "credential"
OWNERS_KEPT = 4096  # destinations whose owners a snapshot keeps
FINGERPRINT_KEY_CONTEXT = "fingerprint-key"  # HKDF info of the fingerprint key, see docs/vault-format.md


@dataclass(frozen=True)
class Snapshot:
    """Services with their decrypted secrets, as the proxy sees them between two vault changes.

    Indexed once per snapshot (by name, by exact host, by wildcard domain), so the per-request
    lookup costs the same with ten services or ten thousand.
    """

    services: tuple[Service, ...]
    secrets: dict[str, Secret]
    update: InitVar[SnapshotUpdate | None] = None
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_name: dict[str, Service] = field(init=False, repr=False, compare=False)
    _by_host: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)
    _by_domain: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)
    _owners: dict[tuple[str, int, str], tuple[Service, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self, update: SnapshotUpdate | None) -> None:
        if update is not None:
            self._index_from(update)
            return
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

    def _index_from(self, update: SnapshotUpdate) -> None:
        """The indexes of ``update.previous`` with only the changed services moved: a change costs
        what it touches, not a pass over every service (issue 18.4)."""
        previous = update.previous
        by_host, by_domain = dict(previous._by_host), dict(previous._by_domain)
        for name in update.changed:
            old = previous._by_name.get(name)
            for rule in old.hosts if old is not None else ():
                index = by_domain if rule.wildcard else by_host
                others = tuple(s for s in index.get(rule.host, ()) if s.name != name)
                if others:
                    index[rule.host] = others
                else:
                    index.pop(rule.host, None)
            new = update.by_name.get(name)
            if new is None:
                continue
            for rule in new.hosts:
                index = by_domain if rule.wildcard else by_host
                bucket = index.get(rule.host, ())
                if all(s.name != name for s in bucket):  # a service with two rules on one host
                    index[rule.host] = (*bucket, new)
        object.__setattr__(self, "_by_name", update.by_name)
        object.__setattr__(self, "_by_host", by_host)
        object.__setattr__(self, "_by_domain", by_domain)

    def derived[T](self, key: str, build: Callable[[], T]) -> T:
        """A view of a repository's records written without ``quiet`` (budgets, OAuth state, service
        policy), built on first use and kept as long as this snapshot: any change to them moves the
        store's change counter and so makes a new snapshot, so the proxy reads them once per
        change, not once per request."""
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
        """Every service with a host rule covering this destination, whatever the path.

        Kept per destination for as long as this snapshot (a vault change makes a new one), at
        most :data:`OWNERS_KEPT` of them, so a stream of made-up hosts cannot grow it."""
        key = (host, port, scheme)
        try:
            return self._owners[key]
        except KeyError:
            pass
        found = self._owners_of(host, port, scheme)
        if len(self._owners) >= OWNERS_KEPT:
            self._owners.clear()
        self._owners[key] = found
        return found

    def _owners_of(self, host: str, port: int, scheme: str) -> tuple[Service, ...]:
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

    def claimants(
        self, host: str, port: int, scheme: str, path: str | None = None, among: frozenset[str] = frozenset()
    ) -> tuple[Service, ...]:
        """The services with the best claim on this destination: one is its owner, several a choice.

        With ``path`` (already normalised), services sharing a host are told apart by their path
        prefixes: the longest covering prefix wins. Several services may share a host and prefix
        (a personal and a work key for one provider): then the caller must name one (call_service
        does) or bind one (an agent's ``uses``). ``among`` is such a binding: if any owner of the
        destination is in it, only those are considered, so a bound agent never falls through to
        another service's credential on that host, whatever the path.
        """
        owners = self.owners(host, port, scheme)
        bound = tuple(s for s in owners if s.name in among)
        owners = bound or owners
        if path is not None:
            ranked = [(len(p), s) for s in owners if (p := s.prefix_for(path)) is not None]
            best = max((rank for rank, _ in ranked), default=-1)
            owners = tuple(s for rank, s in ranked if rank == best)
        return owners

    def owner_of(self, host: str, port: int, scheme: str, path: str | None = None) -> Service | None:
        """The one service this destination belongs to, or None if none or several claim it."""
        found = self.claimants(host, port, scheme, path)
        return found[0] if len(found) == 1 else None


@dataclass(frozen=True, slots=True)
class SnapshotUpdate:
    """How a snapshot differs from ``previous``: the services ``changed`` (added, replaced or
    removed), and every service now by name, in name order."""

    previous: Snapshot
    by_name: dict[str, Service]
    changed: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Read:
    """The services as one reader last read them: at change counter ``counter`` and change-feed
    position ``position``, by name in name order."""

    counter: int
    position: int
    services: dict[str, Service]


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
    kind, params = _key_meta(read_header(db_path), db_path)
    return KeyStoreInfo(kind, key_store(kind).describe(home, params))


class Vault:
    """Open with :meth:`open`, create with :meth:`create`; over any other :class:`Store` (a team
    server's, the in-memory one of the unit tests) build it directly. Safe to share within one
    process.

    ``store`` is the storage protocol (``vault/storage/protocol.py``) that the vault's sibling
    modules keep their records behind; everything in it that is secret was sealed here first.
    """

    def __init__(self, home: Path, store: Store, key: DataKey, vault_id: str) -> None:
        self.home = home
        self.store = store
        self._key = key
        self.vault_id = vault_id
        self._fingerprint_key = FingerprintKey(key.derive(associated_data(vault_id, "", FINGERPRINT_KEY_CONTEXT)))
        key_secrets_made_outside_a_vault(self._fingerprint_key)
        self._lock = threading.Lock()
        # The listing and the snapshot each keep what they read, and read again only the services
        # the store's change feed names (issue 18.4). Beneath both, parsed definitions and opened
        # secrets keyed by the exact stored text or sealed blob: a full read (the first, or after
        # more changes than the feed keeps) parses and decrypts only what the other did not.
        # A rotation writes a new blob (fresh nonce): it misses here and is opened at once.
        self._snapshot: tuple[_Read, Snapshot] | None = None
        self._listed: _Read | None = None
        self._parsed: dict[str, tuple[str, Service]] = {}
        self._opened: dict[str, tuple[bytes, Secret]] = {}
        self._names: tuple[int, list[str]] | None = None  # (change counter, every name in order)

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
            header = {
                "vault_id": vault_id,
                "created_at": repr(time.time()),
                **_key_rows(key, kek, store.kind, params, vault_id),
            }
            SQLiteStore.create(tmp, header).close()
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
        return cls(home, SQLiteStore.open(db_path), key, vault_id)

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
        storage = SQLiteStore.open(db_path)
        try:
            with storage.read() as batch:
                meta = batch.meta()
            vault_id = meta["vault_id"]
            kind, params = _key_meta(meta, db_path)
            kek = key_store(kind, ask_passphrase).load(home, vault_id, params)
            key = _unwrap(meta, kek, kind, vault_id)
        except BaseException:
            storage.close()
            raise
        return cls(home, storage, key, vault_id)

    @classmethod
    def in_memory(cls, home: Path) -> Vault:
        """A vault over :class:`MemoryStore`, for pure unit tests: nothing of it is written to disk
        (``home`` is only where an audit log built for it would go)."""
        storage = MemoryStore()
        vault_id = uuid.uuid4().hex
        with storage.atomic() as batch:
            batch.set_meta({"vault_id": vault_id, "created_at": repr(time.time())})
        return cls(home, storage, DataKey.generate(), vault_id)

    def close(self) -> None:
        self.store.close()

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
            with self.store.atomic() as batch:
                old_kind, old_params = _key_meta(batch.meta(), self.home / DB_NAME)
                batch.set_meta(_key_rows(self._key, kek, new.kind, params, self.vault_id))
        except BaseException:
            new.discard(self.home, params)
            raise
        if (old_kind, old_params) != (new.kind, params):
            key_store(old_kind).discard(self.home, old_params)
        return self.key_store_info()

    # -- services ------------------------------------------------------------------------------

    def list_services(self) -> list[Service]:
        """Every service, in name order; read again only when the store's change counter moved
        (read before the definitions, so a change made meanwhile is read at the next call), and
        then only the services changed since."""
        counter = self.store.changes()
        listed = self._listed
        if listed is None or listed.counter != counter:
            with self.store.read() as batch:
                position, services, _ = self._read_services(batch, listed)
            listed = self._listed = _Read(counter, position, services)
        return list(listed.services.values())

    def _read_services(
        self, batch: Batch, known: _Read | None
    ) -> tuple[int, dict[str, Service], frozenset[str] | None]:
        """(feed position, every service by name in name order, the names read again), from
        ``known`` and the services the feed names since; None for the names when every
        definition was read (no ``known``, the feed does not reach back, or most changed)."""
        position, changed = batch.changed_services(known.position if known is not None else 0)
        if known is None or changed is None or len(changed) > len(known.services) // 4 + 16:
            return position, self._parse_all(batch.services()), None
        services = dict(known.services)
        added = False
        for name in changed:
            definition = batch.service(name)
            if definition is None:
                services.pop(name, None)
                self._parsed.pop(name, None)
            else:
                added = added or name not in services
                services[name] = self._parse(name, definition)
        if added:
            services = {name: services[name] for name in sorted(services)}
        return position, services, frozenset(changed)

    def _parse_all(self, definitions: dict[str, str]) -> dict[str, Service]:
        """``definitions`` parsed, reusing the last parse of any definition whose text is unchanged
        (services are immutable); the cache then holds exactly these services."""
        parsed = self._parsed
        fresh: dict[str, tuple[str, Service]] = {}
        for name, definition in definitions.items():
            known = parsed.get(name)
            fresh[name] = (
                known
                if known is not None and known[0] == definition
                else (definition, _service_from_json(name, definition))
            )
        self._parsed = fresh
        return {name: service for name, (_, service) in fresh.items()}

    def _parse(self, name: str, definition: str) -> Service:
        known = self._parsed.get(name)
        if known is not None and known[0] == definition:
            return known[1]
        service = _service_from_json(name, definition)
        self._parsed[name] = (definition, service)
        return service

    def service_names(self) -> list[str]:
        """Every service's name, in name order, parsing no definition: a page of a listing finds
        its place among the names, then parses only its own services (:meth:`services`). The
        first page in a process at 10,000 services: ~19 ms, not the ~130-260 ms of a full parse."""
        counter = self.store.changes()
        listed = self._listed
        if listed is not None and listed.counter == counter:
            return list(listed.services)
        known = self._names
        if known is None or known[0] != counter:
            with self.store.read() as batch:
                known = self._names = (counter, list(batch.services()))
        return list(known[1])

    def services(self, names: Iterable[str]) -> list[Service]:
        """The services of ``names`` that exist, in that order, in one read, through the parse cache."""
        with self.store.read() as batch:
            found = [(name, batch.service(name)) for name in names]
        return [self._parse(name, definition) for name, definition in found if definition is not None]

    def get_service(self, name: str) -> Service:
        """The service as committed: from the snapshot or the listing when the store's change
        counter says it is current (a change in any process moves it), so call_service's lookups
        cost no read and no parse; else read, through the parse cache. Inside a write batch, after
        the batch's own writes, read the batch instead: the counter may not have moved yet."""
        counter = self.store.changes()
        for known in (self._snapshot[0] if self._snapshot is not None else None, self._listed):
            if known is not None and known.counter == counter:
                service = known.services.get(name)
                if service is None:
                    raise UnknownService(name, list(known.services))
                return service
        with self.store.read() as batch:
            definition = batch.service(name)
            names = None if definition is not None else list(batch.services())
        if definition is None:
            raise UnknownService(name, names or [])
        return self._parse(name, definition)

    def add_service(self, service: Service, secret: Secret) -> None:
        self.add_services([(service, secret)])

    def add_services(self, entries: list[tuple[Service, Secret]]) -> None:
        """Add several services in one transaction: all of them, or (on any refusal) none."""
        with self.store.atomic() as batch:
            names: set[str] = set()  # hosts may be shared: see Snapshot.claimants
            for entry, secret in entries:
                service = validated(entry)
                if service.name in names or batch.service(service.name) is not None:
                    raise DuplicateService(
                        f"a service named {service.name!r} already exists; remove it first or pick another name"
                    )
                batch.put_service(service.name, _service_to_json(service))
                batch.put_secret(service.name, SECRET_FIELD, self._seal_secret(service.name, SECRET_FIELD, secret))
                names.add(service.name)

    def update_service(self, service: Service) -> Service:
        """Replace the non-secret definition of an existing service (its secrets stay)."""
        with self.store.atomic() as batch:
            current = self.get_service(service.name)
            service = replace(validated(service), created_at=current.created_at, rotated_at=current.rotated_at)
            batch.put_service(service.name, _service_to_json(service))
        return service

    def rotate_secret(self, name: str, secret: Secret) -> Service:
        """Replace the credential of ``name``; the old ciphertext is overwritten, not kept."""
        with self.store.atomic() as batch:
            service = replace(self.get_service(name), rotated_at=time.time())
            batch.put_service(name, _service_to_json(service))
            batch.put_secret(name, SECRET_FIELD, self._seal_secret(name, SECRET_FIELD, secret))
        return service

    def remove_service(self, name: str) -> None:
        """Remove the service with its secrets and every record bound to it (OAuth state, budget,
        policy)."""
        with self.store.atomic() as batch:
            if not batch.delete_service(name):
                raise UnknownService(name, list(batch.services()))

    def secret(self, name: str, field: str = SECRET_FIELD) -> Secret:
        with self.store.read() as batch:
            return self._open_secret(batch, name, field)

    def set_secret(self, name: str, field: str, secret: Secret) -> None:
        """Store or replace one secret field of an existing service."""
        with self.store.atomic() as batch:
            if batch.service(name) is None:
                raise UnknownService(name, list(batch.services()))
            batch.put_secret(name, field, self._seal_secret(name, field, secret))

    def keyed(self, value: Secret | str) -> Secret:
        """``value`` as a Secret fingerprinted with this vault's key, as the secrets it returns are.

        A Secret made outside a vault (a token a provider just sent) is keyed with whichever vault
        the process opened last; a fingerprint this vault stores, or compares with one of its own
        secrets', must not depend on that (principle 42's keyed fingerprints, one key per vault)."""
        return Secret(value.reveal() if isinstance(value, Secret) else value, self._fingerprint_key)

    def snapshot(self) -> Snapshot:
        """Services and secrets, decrypted once and reloaded only when the store's change counter
        moved (a service, a secret or a versioned record changed, in any process); then only the
        services the change feed names are read and decrypted again, and the new snapshot shares
        everything else with the last one.

        What is read, is read in one read view, so a service added or removed meanwhile never
        leaves a snapshot with a service and no secret."""
        with self._lock:
            counter = self.store.changes()
            known = self._snapshot
            if known is not None and known[0].counter == counter:
                return known[1]
            with self.store.read() as batch:
                position, services, changed = self._read_services(batch, known[0] if known else None)
                if known is None or changed is None:
                    snapshot = Snapshot(tuple(services.values()), self._open_all(batch, services))
                else:
                    secrets = dict(known[1].secrets)
                    for name in changed:
                        if name in services:
                            secrets[name] = self._open_credential(batch, name)
                        else:
                            secrets.pop(name, None)
                            self._opened.pop(name, None)
                    update = SnapshotUpdate(known[1], services, changed)
                    snapshot = Snapshot(tuple(services.values()), secrets, update)
            self._snapshot = (_Read(counter, position, services), snapshot)
            return snapshot

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt with the vault key, bound to this vault and ``context`` (e.g. ``"agent:ci"``)."""
        return self._key.seal(plaintext, associated_data(self.vault_id, "", context))

    def unseal(self, blob: bytes, context: str, what: str) -> bytes:
        return self._key.open(blob, associated_data(self.vault_id, "", context), what)

    def _seal_secret(self, service: str, field: str, secret: Secret) -> bytes:
        return self._key.seal(secret.reveal().encode("utf-8"), associated_data(self.vault_id, service, field))

    def _open_all(self, batch: Batch, services: dict[str, Service]) -> dict[str, Secret]:
        """Every service's credential, decrypting only the blobs that changed since the last
        snapshot; the cache then holds exactly these services' credentials."""
        opened = self._opened
        blobs = batch.secrets(SECRET_FIELD)
        fresh: dict[str, tuple[bytes, Secret]] = {}
        secrets: dict[str, Secret] = {}
        for name in services:
            blob = blobs.get(name)
            known = opened.get(name)
            if known is None or known[0] != blob:
                if blob is None:
                    raise UnknownService(name, list(batch.services()))
                known = (blob, self._open_blob(batch, name, SECRET_FIELD, blob))
            fresh[name] = known
            secrets[name] = known[1]
        self._opened = fresh
        return secrets

    def _open_credential(self, batch: Batch, name: str) -> Secret:
        """One service's credential, decrypted unless the cache holds this very blob."""
        blob = batch.secret(name, SECRET_FIELD)
        known = self._opened.get(name)
        if known is None or known[0] != blob:
            known = self._opened[name] = (blob or b"", self._open_blob(batch, name, SECRET_FIELD, blob))
        return known[1]

    def _open_secret(self, batch: Batch, name: str, field: str) -> Secret:
        return self._open_blob(batch, name, field, batch.secret(name, field))

    def _open_blob(self, batch: Batch, name: str, field: str, blob: bytes | None) -> Secret:
        if blob is None:
            raise UnknownService(name, list(batch.services()))
        plain = self._key.open(blob, associated_data(self.vault_id, name, field), f"the secret of {name!r}")
        return Secret(plain.decode("utf-8"), self._fingerprint_key)


def _key_rows(key: DataKey, kek: bytes, kind: str, params: Params, vault_id: str) -> dict[str, str]:
    wrapped = key.wrap(kek, associated_data(vault_id, "", wrap_context(kind)))
    return {"key_store": kind, "key_params": json.dumps(params, sort_keys=True), "wrapped_key": wrapped.hex()}


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


def _service_to_json(service: Service) -> str:
    return json.dumps(service_definition(service), sort_keys=True)


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
