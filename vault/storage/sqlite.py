"""The local vault's :class:`~.protocol.Store`: one SQLite file in WAL mode.

WAL gives what several processes at once (the MCP server, the standalone proxy, the CLI) need:
atomic transactions, readers that never block the writer, and a file that a crash leaves in the
old or the new state. Every write batch is one ``BEGIN IMMEDIATE`` transaction, so concurrent
writers queue instead of losing each other's work; a read view is one deferred transaction.

Busy writers: SQLite's own busy handler sleeps up to 100 ms between tries, so under eight
writers one of them could lose every race for ten seconds and fail. A write batch instead tries
``BEGIN IMMEDIATE`` without waiting and, while another process holds the write lock, tries again
after a short, growing, jittered pause (at most :data:`RETRY_MAX`), for up to :data:`WRITE_WAIT`
seconds; then it fails with :class:`VaultBusy`, having written nothing. The WAL checkpoint after
a ciphertext was replaced never waits: a reader holding old pages would otherwise stall every
writer behind it (the pages go at a later checkpoint).

``docs/vault-format.md`` describes every table and row (format 3). A format-2 vault (a table
per repository) is migrated on open, in one transaction: each old row becomes a record.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path

from ..errors import StoreConflict, VaultBusy, VaultCorrupted
from . import walindex
from .protocol import ANY, Fields, Record, copy_fields, decode_fields, encode_fields

FORMAT = "3"
# The longest the WAL-index header alone answers "nothing changed": past it, the statement asks
# SQLite again, so a case the header check misses (none is known) leaves a change unseen for at
# most this long, not for the life of the process. About one statement in a hundred requests.
QUIET_SECONDS = 0.25
BUSY_TIMEOUT_MS = 10000  # readers and the connection set-up: how long SQLite itself waits for a lock
WRITE_WAIT = 30.0  # seconds a write batch waits for the write lock before VaultBusy
RETRY_FIRST, RETRY_MAX = 0.001, 0.02  # pause between two tries for the write lock (doubling, jittered)
KEEP_ENTRIES = 16  # entries kept per stream (the contract asks for at least the last)
FEED_KEPT = 1024  # the newest entries of the change feed kept

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    updated_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS secrets (
    service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
    field TEXT NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (service, field)
)""",
    """CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    service TEXT REFERENCES services(name) ON DELETE CASCADE,
    fields TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
)""",
    "CREATE INDEX IF NOT EXISTS records_by_service ON records (service)",
    """CREATE TABLE IF NOT EXISTS streams (
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entry BLOB NOT NULL,
    PRIMARY KEY (stream, seq)
)""",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('services_version', '0')",
)
# Any write to services or secrets, by any process, bumps one counter (triggers, so that even a
# hand-made change is seen); a record written without ``quiet`` bumps it from the batch.
_BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'services_version'"
_SCHEMA += tuple(
    f"CREATE TRIGGER IF NOT EXISTS bump_{table}_{event.lower()} AFTER {event} ON {table} BEGIN {_BUMP}; END"
    for table in ("services", "secrets")
    for event in ("INSERT", "UPDATE", "DELETE")
)
# The change feed (protocol.py) is the stream ``service-changes`` (entries: service names, UTF-8),
# written by triggers again, so that every writer feeds it, an older clavis-mcp's too.
FEED_STREAM = "service-changes"
_FEED_TAIL = f"(SELECT MAX(seq) FROM streams WHERE stream = '{FEED_STREAM}')"
_FEED: tuple[str, ...] = tuple(
    f"CREATE TRIGGER IF NOT EXISTS feed_{table}_{event.lower()} AFTER {event} ON {table} BEGIN "
    f"INSERT INTO streams (stream, seq, entry) VALUES "
    f"('{FEED_STREAM}', COALESCE({_FEED_TAIL}, 0) + 1, CAST({row}.{column} AS BLOB)); "
    f"DELETE FROM streams WHERE stream = '{FEED_STREAM}' AND seq <= {_FEED_TAIL} - {FEED_KEPT}; END"
    for table, column in (("services", "name"), ("secrets", "service"))
    for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
)
_SCHEMA += _FEED

# Format 2 kept a table per repository: (table, record kind, key column, bound to the service).
_FORMAT2_TABLES = (
    ("agents", "agent", "name", False),
    ("oauth_clients", "oauth", "service", True),
    ("budgets", "budget", "service", True),
    ("rate_limits", "rate_limits", "service", False),
    ("mcp_service_settings", "policy", "service", True),
)
ANCHOR_STREAM = "audit-anchor"  # format 2's audit_anchor.anchor becomes this stream's first entry
LEGACY_ANCHOR = ("audit", "legacy")  # its older columns (key, head), if still in use


def unreadable(db_path: Path, exc: BaseException) -> VaultCorrupted:
    return VaultCorrupted(f"the vault file {db_path} is unreadable ({exc}); restore it from a backup")


def read_header(db_path: Path) -> dict[str, str]:
    """The ``meta`` rows of the vault at ``db_path``, read-only and without unlocking it."""
    try:
        with closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as conn:
            return _read_meta(conn, db_path, accept=("2", FORMAT))
    except sqlite3.DatabaseError as exc:
        raise unreadable(db_path, exc) from None


class SQLiteStore:
    """Open with :meth:`open` (migrating an older format) or :meth:`create`. Safe to share
    between the threads of one process (one connection behind a re-entrant lock)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._batch: SQLiteBatch | None = None  # the batch open on the thread holding the lock
        self._seen: tuple[int, int] | None = None  # (data_version, change counter) last read
        # (WAL-index header, change counter, until when): the counter holds while the header reads
        # the same, and at most QUIET_SECONDS
        self._quiet: tuple[bytes, int, float] | None = None
        wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        opened = conn.execute("PRAGMA database_list").fetchone()[2]  # the file SQLite opened: a link followed
        self._wal_index = walindex.attach(Path(opened)) if wal and opened else None

    @classmethod
    def create(cls, path: Path, header: Mapping[str, str]) -> SQLiteStore:
        """A new store at ``path`` (which must not exist yet) with ``header`` as its meta rows."""
        conn = _connect(path)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)", [("schema_version", FORMAT), *header.items()]
                )
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    @classmethod
    def open(cls, path: Path) -> SQLiteStore:
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as exc:
            raise unreadable(path, exc) from None
        try:
            if _read_meta(conn, path, accept=("2", FORMAT))["schema_version"] != FORMAT:
                _migrate_from_2(conn, path)
            elif not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'feed_services_insert'").fetchone():
                _add_feed(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise unreadable(path, exc) from None
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    @classmethod
    def side_file(cls, path: Path) -> SQLiteStore:
        """A store in a file of its own beside the vault, with no header: for counts written on
        every request (budget usage), so that counting does not contend with the vault's writers.
        Its ``usage`` table of format 2 becomes records of kind ``usage``."""
        if not path.exists():
            path.touch(mode=0o600)
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage'").fetchone():
                for service, window_start, count in conn.execute("SELECT service, window_start, count FROM usage"):
                    fields = encode_fields({"window_start": window_start, "count": count})
                    conn.execute(
                        "INSERT OR REPLACE INTO records (kind, key, service, fields, version) "
                        "VALUES ('usage', ?, NULL, ?, 1)",
                        (service, fields),
                    )
                conn.execute("DROP TABLE usage")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    # -- the protocol --------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[SQLiteBatch]:
        with self._lock:
            if self._batch is not None:
                if not self._batch.writable:
                    raise RuntimeError("a write batch inside a read view: open the write batch first")
                yield self._batch
                return
            self._begin_immediate()
            self._batch = batch = SQLiteBatch(self._conn, writable=True)
            try:
                yield batch
                self._conn.commit()
            except BaseException:
                if self._conn.in_transaction:  # also when the commit itself failed (a full disk)
                    self._conn.rollback()
                raise
            finally:
                self._batch = None
                # Our own commits leave data_version as it is: read the counter again next time.
                self._seen = self._quiet = None
            if batch.scrub:
                self._checkpoint()

    @contextmanager
    def read(self) -> Iterator[SQLiteBatch]:
        with self._lock:
            if self._batch is not None:
                yield self._batch
                return
            self._conn.execute("BEGIN")
            self._batch = SQLiteBatch(self._conn, writable=False)
            try:
                yield self._batch
            finally:
                self._batch = None
                self._conn.rollback()

    def changes(self) -> int:
        """While the WAL-index header reads as it did around the last answer, nothing was committed
        since (``walindex.py``): that answer, without a statement. Else ``PRAGMA data_version`` says
        whether another connection wrote anything; only then is the counter row read."""
        with self._lock:
            wal_index, quiet = self._wal_index, self._quiet
            if (
                quiet is not None
                and wal_index is not None
                and time.monotonic() < quiet[2]
                and wal_index.reads(quiet[0])
            ):
                return quiet[1]
            started = time.monotonic()  # the bound counts from before the statement's read
            before = None if wal_index is None else wal_index.header()
            data_version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            if self._seen is not None and self._seen[0] == data_version:
                counter = self._seen[1]
            else:
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'services_version'").fetchone()
                counter = int(row[0]) if row else 0
            if self._batch is None:
                self._seen = (data_version, counter)
                self._quiet = None
                if wal_index is not None and before is not None and wal_index.header() == before:
                    self._quiet = (before, counter, started + QUIET_SECONDS)
            return counter

    def check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA quick_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            wal_index, self._wal_index = self._wal_index, None
            if wal_index is not None:
                walindex.detach(wal_index)  # after the connection: see walindex.py

    def _begin_immediate(self) -> None:
        """Take the write lock: try, and while another process holds it, try again (see above)."""
        deadline = time.monotonic() + WRITE_WAIT
        pause = RETRY_FIRST
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    if time.monotonic() >= deadline:
                        raise VaultBusy(
                            f"the vault {self.path} stayed locked by another process's write for "
                            f"{WRITE_WAIT:.0f} s; nothing was written: try again, and if it stays locked, "
                            "look for a stopped clavis-mcp process"
                        ) from None
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, RETRY_MAX)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _checkpoint(self) -> None:
        """Move committed pages out of the WAL so a replaced or deleted ciphertext does not linger.

        Best effort, and without waiting: a checkpoint that waited for a reader in another process
        would hold back every writer meanwhile; the pages it could not move go at a later one.
        """
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout = 0")
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class SQLiteBatch:
    def __init__(self, conn: sqlite3.Connection, *, writable: bool) -> None:
        self._conn = conn
        self.writable = writable
        self.scrub = False  # a ciphertext was replaced or deleted: checkpoint the WAL after commit

    def _write(self, quiet: bool = False) -> None:
        if not self.writable:
            raise RuntimeError("a write inside a read view: open the batch with atomic()")
        if not quiet:
            self._conn.execute(_BUMP)

    def _one(self, sql: str, params: tuple[object, ...]) -> tuple[object, ...] | None:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else tuple(row)

    # -- services and secrets ------------------------------------------------------------------

    def services(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT name, definition FROM services ORDER BY name").fetchall())

    def service(self, name: str) -> str | None:
        row = self._one("SELECT definition FROM services WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    def put_service(self, name: str, definition: str) -> None:
        self._write(quiet=True)  # the triggers bump
        self._conn.execute(
            "INSERT INTO services (name, definition, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
            (name, definition, time.time()),
        )

    def delete_service(self, name: str) -> bool:
        self._write(quiet=True)
        self._conn.execute("DELETE FROM secrets WHERE service = ?", (name,))
        self._conn.execute("DELETE FROM records WHERE service = ?", (name,))
        deleted = self._conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount
        self.scrub = self.scrub or bool(deleted)
        return bool(deleted)

    def secret(self, service: str, field: str) -> bytes | None:
        row = self._one("SELECT blob FROM secrets WHERE service = ? AND field = ?", (service, field))
        return None if row is None else bytes(row[0])  # type: ignore[call-overload]

    def secrets(self, field: str) -> dict[str, bytes]:
        rows = self._conn.execute("SELECT service, blob FROM secrets WHERE field = ? ORDER BY service", (field,))
        return {str(service): bytes(blob) for service, blob in rows}

    def put_secret(self, service: str, field: str, blob: bytes) -> None:
        self._write(quiet=True)
        if self.service(service) is None:
            raise StoreConflict(f"no service {service!r} to hold the secret field {field!r}")
        params = (bytes(blob), service, field)
        if self._conn.execute("UPDATE secrets SET blob = ? WHERE service = ? AND field = ?", params).rowcount:
            self.scrub = True
        else:
            self._conn.execute("INSERT INTO secrets (blob, service, field) VALUES (?, ?, ?)", params)

    def delete_secret(self, service: str, field: str) -> bool:
        self._write(quiet=True)
        deleted = bool(
            self._conn.execute("DELETE FROM secrets WHERE service = ? AND field = ?", (service, field)).rowcount
        )
        self.scrub = self.scrub or deleted
        return deleted

    def changed_services(self, since: int) -> tuple[int, set[str] | None]:
        low, high = self._conn.execute(
            "SELECT MIN(seq), MAX(seq) FROM streams WHERE stream = ?", (FEED_STREAM,)
        ).fetchone()
        if high is None:
            return 0, set() if since == 0 else None
        if not low - 1 <= since <= high:
            return int(high), None
        rows = self._conn.execute(
            "SELECT DISTINCT entry FROM streams WHERE stream = ? AND seq > ?", (FEED_STREAM, since)
        )
        return int(high), {bytes(entry).decode() for (entry,) in rows}

    # -- records -------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Record | None:
        row = self._one("SELECT fields, version, service FROM records WHERE kind = ? AND key = ?", (kind, key))
        return None if row is None else _record(kind, key, *row)

    def records(self, kind: str) -> list[Record]:
        rows = self._conn.execute(
            "SELECT key, fields, version, service FROM records WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
        return [_record(kind, *row) for row in rows]

    def put(
        self,
        kind: str,
        key: str,
        fields: Fields,
        *,
        service: str | None = None,
        expect: int = ANY,
        quiet: bool = False,
    ) -> int:
        text = encode_fields(copy_fields(fields))
        self._write(quiet)
        row = self._one("SELECT version FROM records WHERE kind = ? AND key = ?", (kind, key))
        version = int(row[0]) if row else 0  # type: ignore[call-overload]
        _compare(kind, key, version, expect)
        if service is not None and self.service(service) is None:
            raise StoreConflict(f"no service {service!r} to hold the {kind} record {key!r}")
        self._conn.execute(
            "INSERT OR REPLACE INTO records (kind, key, service, fields, version) VALUES (?, ?, ?, ?, ?)",
            (kind, key, service, text, version + 1),
        )
        return version + 1

    def delete(self, kind: str, key: str, *, expect: int = ANY, quiet: bool = False) -> bool:
        row = self._one("SELECT version FROM records WHERE kind = ? AND key = ?", (kind, key))
        _compare(kind, key, int(row[0]) if row else 0, expect)  # type: ignore[call-overload]
        if row is None:
            return False
        self._write(quiet)
        self._conn.execute("DELETE FROM records WHERE kind = ? AND key = ?", (kind, key))
        return True

    # -- streams and header --------------------------------------------------------------------

    def tail(self, stream: str) -> tuple[int, bytes] | None:
        row = self._one("SELECT seq, entry FROM streams WHERE stream = ? ORDER BY seq DESC LIMIT 1", (stream,))
        return None if row is None else (int(row[0]), bytes(row[1]))  # type: ignore[call-overload]

    def append(self, stream: str, entry: bytes, *, expect: int) -> int:
        self._write(quiet=True)
        last = self.tail(stream)
        if (last[0] if last else 0) != expect:
            raise StoreConflict(f"the stream {stream!r} moved on: its tail is not entry {expect}")
        self._conn.execute("INSERT INTO streams (stream, seq, entry) VALUES (?, ?, ?)", (stream, expect + 1, entry))
        self._conn.execute("DELETE FROM streams WHERE stream = ? AND seq <= ?", (stream, expect + 1 - KEEP_ENTRIES))
        return expect + 1

    def meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, rows: Mapping[str, str]) -> None:
        self._write(quiet=True)
        self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(rows.items()))


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _record(kind: str, key: str, fields: object, version: object, service: object) -> Record:
    try:
        values = decode_fields(str(fields))
    except (ValueError, TypeError, KeyError):
        raise VaultCorrupted(f"the {kind} record {key!r} in the vault is damaged; restore a backup") from None
    return Record(kind, key, values, int(version), None if service is None else str(service))  # type: ignore[call-overload]


def _compare(kind: str, key: str, version: int, expect: int) -> None:
    if expect != ANY and version != expect:
        raise StoreConflict(
            f"the {kind} record {key!r} is at version {version}, not {expect}: it changed since it was read"
        )


def _read_meta(conn: sqlite3.Connection, db_path: Path, accept: tuple[str, ...]) -> dict[str, str]:
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("schema_version") == "1":
        raise VaultCorrupted(
            f"the vault {db_path} was made by a development version (format 1); "
            "create a new one with clavis-mcp init in an empty CLAVIS_HOME and re-add the services"
        )
    if meta.get("schema_version") not in accept or "vault_id" not in meta:
        raise VaultCorrupted(f"the vault file {db_path} has an unknown format; restore it from a backup")
    return meta


def _migrate_from_2(conn: sqlite3.Connection, db_path: Path) -> None:
    """Format 2 -> 3 in one transaction (a second process opening at once finds it done)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _read_meta(conn, db_path, accept=("2", FORMAT))["schema_version"] == FORMAT:
            conn.rollback()
            return
        for statement in _SCHEMA:
            conn.execute(statement)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, kind, key_column, bound in _FORMAT2_TABLES:
            if table not in tables:
                continue
            cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 (names from the constant above)
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(columns, row, strict=True))
                key = str(values.pop(key_column))
                conn.execute(
                    "INSERT INTO records (kind, key, service, fields, version) VALUES (?, ?, ?, ?, 1)",
                    (kind, key, key if bound else None, encode_fields(values)),
                )
            conn.execute(f"DROP TABLE {table}")
        if "audit_anchor" in tables:
            _migrate_audit_anchor(conn)
            conn.execute("DROP TABLE audit_anchor")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (FORMAT,))
        conn.execute(_BUMP)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _add_feed(conn: sqlite3.Connection) -> None:
    """Give a format-3 vault made before the change feed its triggers (an addition that older
    clavis-mcp versions ignore and, through the triggers, keep fed)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _FEED:
            conn.execute(statement)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _migrate_audit_anchor(conn: sqlite3.Connection) -> None:
    columns = {c[1] for c in conn.execute("PRAGMA table_info(audit_anchor)")}
    select = "key, head, anchor" if "anchor" in columns else "key, head, NULL"
    row = conn.execute(f"SELECT {select} FROM audit_anchor WHERE id = 1").fetchone()  # noqa: S608
    if row is None:
        return
    key, head, anchor = row
    if anchor is not None:
        conn.execute("INSERT INTO streams (stream, seq, entry) VALUES (?, 1, ?)", (ANCHOR_STREAM, anchor))
    if key or head is not None:
        legacy = {"key": bytes(key) if key else None, "head": None if head is None else bytes(head)}
        conn.execute(
            "INSERT INTO records (kind, key, service, fields, version) VALUES (?, ?, NULL, ?, 1)",
            (*LEGACY_ANCHOR, encode_fields(legacy)),
        )


def _connect(db_path: Path) -> sqlite3.Connection:
    if not db_path.exists():
        db_path.touch(mode=0o600)
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA secure_delete=ON")
        # WAL with NORMAL keeps every commit atomic and crash-safe for the process; it skips the
        # fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn
