"""The review index: a SQLite sidecar that makes filtering a large audit log fast.

It holds, per record, the columns a review filters and counts on and the record's position
``(file number, offset)``; the records themselves are always read back from the log. The
index is a cache: an :class:`IndexKeeper` beside each appending log brings it up to date in the
background a moment after records are appended (the append only sets a flag), and a review
catches up whatever is left when it starts; it is rebuilt from the log if the log no longer
matches what was indexed. It carries no trust: ``audit verify`` reads the log itself.

Beside the records, ``latest`` keeps the newest record of each (service, decision), updated as
records are indexed, so a listing of services learns every one's last use and last check in
one query (issue 18.4: one lookup per service and decision was ~80,000 queries at 10,000
services). It is derived like the rest: dropped and rebuilt with the records.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ..errors import AuditIndexStale, ClavisError
from .files import LogFiles, lines_from
from .filters import AuditFilter

INDEX_SUFFIX = ".index.sqlite"
Fields = tuple[object, ...]  # a record's time and indexed columns (``indexed_fields``)
DIMENSIONS = ("service", "source", "status", "decision")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    pos INTEGER PRIMARY KEY,
    t REAL NOT NULL,
    source TEXT, service TEXT, decision TEXT, status INTEGER, host TEXT,
    file INTEGER NOT NULL,
    offset INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_time ON records (t);
CREATE INDEX IF NOT EXISTS records_by_service ON records (service, t);
CREATE TABLE IF NOT EXISTS latest (
    service TEXT NOT NULL,
    decision TEXT NOT NULL,
    t REAL NOT NULL,
    file INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (service, decision)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    file INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    last_offset INTEGER,
    last_line BLOB
);
"""
_INSERT = "INSERT INTO records (t, source, service, decision, status, host, file, offset) VALUES (?,?,?,?,?,?,?,?)"
_LATEST = "INSERT OR REPLACE INTO latest (service, decision, t, file, offset) VALUES (?,?,?,?,?)"
_FILL_LATEST = """INSERT OR REPLACE INTO latest (service, decision, t, file, offset)
SELECT service, decision, t, file, offset FROM records WHERE pos IN (
    SELECT max(pos) FROM records WHERE typeof(service) = 'text' AND typeof(decision) = 'text'
    GROUP BY service, decision)"""
_VERSION = 1  # PRAGMA user_version: 1 = ``latest`` is kept (an index made before has it filled once)
_BATCH = 20_000
KEEP_EVERY = 2.0  # seconds between two background catch-ups while records are being appended
KEEP_LINES = 20_000  # lines per background catch-up: a log never indexed is caught up in slices
KNOWN_LINES = 10_000  # appended lines a keeper holds with their records until a catch-up (~15 MB at most)
_log = logging.getLogger(__name__)


class AuditIndex:
    def __init__(self, files: LogFiles) -> None:
        self.files = files
        self.path = files.live.with_name(files.live.name + INDEX_SUFFIX)
        if not self.path.exists():
            self.path.touch(mode=0o600)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.behind = False  # whether the last refresh stopped at its limit
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the tail costs a re-read
            self._conn.executescript(_SCHEMA)
            self._upgrade()
        except BaseException:  # a full disk or a read-only folder: the caller reports it
            self._conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def _upgrade(self) -> None:
        """Fill ``latest`` from the records of an index made before it was kept (once)."""
        conn = self._conn
        if conn.execute("PRAGMA user_version").fetchone()[0] >= _VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < _VERSION:  # not filled meanwhile
                conn.execute(_FILL_LATEST)
                conn.execute(f"PRAGMA user_version = {_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def refresh(self, limit: int | None = None, known: dict[bytes, Fields] | None = None) -> tuple[int, int]:
        """Index what was appended since the last review; return the position reached.

        With ``limit``, at most that many lines are read (the rest at the next call): then
        ``behind`` is True, as it may be when exactly ``limit`` lines were left. ``known``: the
        indexed fields of lines the caller wrote (see :class:`IndexKeeper`), taken out as their
        lines are met, so those lines are not parsed again."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self.behind = False
            position = self._resume_point()
            for number, _ in self.files.numbered():
                if number < position[0]:
                    continue
                handle = self.files.open(number)
                if handle is None:
                    continue
                with handle:
                    start = position[1] if number == position[0] else 0
                    reached, used = self._index_file(number, handle, start, limit, known)
                    position = reached or (number, start)
                if limit is not None:
                    limit -= used
                    if limit <= 0:
                        self.behind = True
                        break
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return position

    def select(self, where: AuditFilter, limit: int | None) -> list[tuple[int, int]]:
        """Positions of the newest ``limit`` matching records (all if None), oldest first."""
        condition, params = where.where()
        sql = f"SELECT file, offset FROM records WHERE {condition} ORDER BY pos DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, limit]
        return list(reversed(self._conn.execute(sql, params).fetchall()))

    def newest(self, where: AuditFilter) -> dict[str, Any] | None:
        """The newest record matching ``where``, read back from the log, or None."""
        found = list(self.read(self.select(where, 1)))
        return found[0] if found else None

    def count(self, where: AuditFilter) -> int:
        condition, params = where.where()
        total: int = self._conn.execute(f"SELECT count(*) FROM records WHERE {condition}", params).fetchone()[0]
        return total

    def stats(self, where: AuditFilter) -> dict[str, list[tuple[Any, int]]]:
        """Counts per service, agent, status and decision, largest first (one pass over the rows)."""
        condition, params = where.where()
        columns = ", ".join(DIMENSIONS)
        rows = self._conn.execute(
            f"SELECT {columns}, count(*) FROM records WHERE {condition} GROUP BY {columns}", params
        ).fetchall()
        out = {}
        for position, column in enumerate(DIMENSIONS):
            totals: dict[Any, int] = {}
            for row in rows:
                totals[row[position]] = totals.get(row[position], 0) + row[-1]
            out[column] = sorted(totals.items(), key=lambda item: (-item[1], _sort_key(item[0])))
        return out

    def latest(self, services: Sequence[str]) -> list[tuple[str, str, float, tuple[int, int]]]:
        """(service, decision, time, position) of the newest record of each decision of each of
        ``services``, in one query."""
        rows = self._conn.execute(
            "SELECT service, decision, t, file, offset FROM latest WHERE service IN (SELECT value FROM json_each(?))",
            (json.dumps(list(services)),),
        ).fetchall()
        return [(service, decision, t, (number, offset)) for service, decision, t, number, offset in rows]

    def span(self, where: AuditFilter) -> tuple[float | None, float | None]:
        condition, params = where.where()
        first_last: tuple[float | None, float | None] = self._conn.execute(
            f"SELECT min(t), max(t) FROM records WHERE {condition}", params
        ).fetchone()
        return first_last

    def read(self, positions: list[tuple[int, int]]) -> Iterator[dict[str, Any]]:
        """The records at ``positions``, read back from the log files."""
        handles: dict[int, Any] = {}
        try:
            for number, offset in positions:
                if number not in handles:
                    handles[number] = self.files.open(number)
                handle = handles[number]
                if handle is None:
                    continue
                handle.seek(offset)
                try:
                    yield json.loads(handle.readline())
                except ValueError:
                    raise AuditIndexStale(
                        f"the audit log changed under its index (file {number}, offset {offset}): "
                        f"check it with `clavis-mcp audit verify`; delete {self.path.name} to index it afresh"
                    ) from None
        finally:
            for handle in handles.values():
                if handle is not None:
                    handle.close()

    def _resume_point(self) -> tuple[int, int]:
        """Where indexing goes on; drops the index if the log was replaced or cut under it."""
        row = self._conn.execute("SELECT file, offset, last_offset, last_line FROM progress WHERE id = 1").fetchone()
        first = self.files.numbered()[0][0]
        if row is not None:
            number, offset, last_offset, last_line = row
            handle = self.files.open(number)
            if handle is not None:
                with handle:
                    handle.seek(last_offset)
                    still_there = last_line is None or handle.readline() == last_line
                oldest = self._conn.execute("SELECT file FROM records ORDER BY pos LIMIT 1").fetchone()
                if still_there and (oldest is None or oldest[0] >= first):
                    return number, offset
        self._conn.execute("DELETE FROM records")
        self._conn.execute("DELETE FROM latest")
        self._conn.execute("DELETE FROM progress")
        return first, 0

    def _index_file(
        self, number: int, handle: Any, start: int, limit: int | None, known: dict[bytes, Fields] | None
    ) -> tuple[tuple[int, int] | None, int]:
        """Index one file from ``start`` (at most ``limit`` lines); the position reached (None if
        no line) and the number of lines read."""
        known = known or {}
        rows: list[tuple[object, ...]] = []
        newest: dict[tuple[object, object], tuple[object, ...]] = {}  # (service, decision) -> its last row
        last: tuple[int, bytes] | None = None
        used = 0
        for offset, line in lines_from(handle, start):
            last = (offset, line)
            used += 1
            fields = known.pop(line, None)
            row = _row(line, number, offset) if fields is None else _row_of(fields, number, offset)
            if row is not None:
                rows.append(row)
                if isinstance(row[2], str) and isinstance(row[3], str):
                    newest[row[2], row[3]] = row
            if len(rows) >= _BATCH:
                self._conn.executemany(_INSERT, rows)
                rows.clear()
            if limit is not None and used >= limit:
                break
        self._conn.executemany(_INSERT, rows)
        self._conn.executemany(
            _LATEST, [(service, decision, r[0], r[6], r[7]) for (service, decision), r in newest.items()]
        )
        if last is None:
            return None, used
        end = last[0] + len(last[1])
        self._conn.execute(
            "INSERT OR REPLACE INTO progress (id, file, offset, last_offset, last_line) VALUES (1, ?, ?, ?, ?)",
            (number, end, last[0], last[1]),
        )
        return (number, end), used


def _sort_key(value: Any) -> tuple[int, str]:
    """Ties in a count are ordered by value, with no value first; numbers and text never compare."""
    return (0, "") if value is None else (1, f"{value:>12}" if isinstance(value, int) else str(value))


def indexed_fields(record: dict[str, Any]) -> Fields:
    """What the index keeps of a record, its position aside: the time as written, then the columns."""
    get = record.get
    return get("time"), get("source"), get("service"), get("decision"), get("status"), get("host")


def _row(line: bytes, number: int, offset: int) -> tuple[object, ...] | None:
    """The index columns of one log line; None for a line that is not a record (verify reports it)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return _row_of(indexed_fields(record), number, offset) if isinstance(record, dict) else None


def _row_of(fields: Fields, number: int, offset: int) -> tuple[object, ...] | None:
    if not isinstance(fields[0], str):
        return None
    try:
        moment = datetime.fromisoformat(fields[0]).timestamp()
    except ValueError:
        return None
    return (moment, *fields[1:], number, offset)


class IndexKeeper:
    """Keeps the review index of one log current while records are appended, off the append path.

    :meth:`poke` (after each append) only sets a flag; a daemon thread, started on the first poke
    after a quiet spell, catches the index up every :data:`KEEP_EVERY` seconds while pokes keep
    coming and ends after one quiet interval. So a review's first query finds at most a few
    seconds of records to index, not the whole log. A catch-up reads at most :data:`KEEP_LINES`
    lines, so a large log never indexed (written before there was a keeper) is indexed in slices,
    not in one long stretch that would hold the process's interpreter lock. Catching up is what a review would do anyway
    (:meth:`AuditIndex.refresh`, one transaction, serialised with other processes' by SQLite); a
    failure (a full disk, a removed folder) is logged and left for the next review to report.

    The appender hands over each line it wrote with the record it holds (the fields the index
    keeps are pure functions of that line), so a catch-up that meets exactly that line in the log
    takes them from the record rather than parsing it again (a JSON parse per record, which this
    process's CPU paid on top of writing it). The fields are picked out in the catch-up, all at
    once, not on each request's path. Other processes' lines, and any that are not byte for byte
    what was handed over, are parsed as before. At most :data:`KNOWN_LINES` are held; lines past
    that are parsed.
    """

    def __init__(self, files: LogFiles, every: float | None = None) -> None:
        self.files = files
        self.every = KEEP_EVERY if every is None else every
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._warned = False  # one warning per keeper, not one per interval while it fails
        self._known: dict[bytes, dict[str, Any]] = {}  # lines appended since the last catch-up, as records

    def poke(self, line: bytes | None = None, record: dict[str, Any] | None = None) -> None:
        """Records were appended; ``line`` (written as ``record``) among them."""
        with self._lock:
            self._pending = True
            if line is not None and record is not None and len(self._known) < KNOWN_LINES:
                self._known[line] = record  # its fields are taken in the catch-up, off the request's path
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="clavis-audit-index", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the thread (a catch-up under way finishes first); the next review catches up."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                with self._lock:
                    if not self._pending:
                        return
                    self._pending = False
                self._catch_up()
        finally:
            with self._lock:
                self._thread = None

    def _catch_up(self) -> None:
        """One catch-up on a connection of its own (the sidecar may have been deleted since)."""
        try:
            with self._lock:
                records, self._known = self._known, {}
            known = {line: indexed_fields(record) for line, record in records.items()}
            index = AuditIndex(self.files)
            try:
                index.refresh(KEEP_LINES, known)
                if index.behind:
                    with self._lock:
                        self._pending = True
            finally:
                index.close()
        except (sqlite3.Error, OSError, ClavisError) as exc:
            if not self._warned:
                self._warned = True
                _log.warning(
                    "the audit review index was not brought up to date (%s); the next review will",
                    type(exc).__name__,
                )
