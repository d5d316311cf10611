"""The audit log: one JSON line per decision, never a header value, body or query value.

Tamper-evident: each record carries an HMAC-SHA256 over its content and the previous
record's MAC, keyed by a key held in the vault, and a checkpoint of the last record, sealed
with the vault key, exposes a cut end (see ``audit_chain`` and ``audit_anchor``). Appends
from every process are serialised by a file lock, so the chain has one order; each record is
one ``write`` to the kernel before the request it records is let through. A write that fails raises
AuditWriteError and the caller refuses the request (fail closed, like mitmproxy's ``save``).

The vault's high-water mark is raised by each process on its first record, on the first record
of a new live file, every ``MARK_EVERY`` records or ``MARK_SECONDS`` seconds, and on
:meth:`AuditLog.close`: a vault commit (and an ``fsync`` of the log and the lock file, so the
mark never vouches for records a power loss could take) a few times a minute at most, not one
per request. A chain whose end (the log's last record, or the checkpoint) is below the mark, or
below the last record this process wrote, was cut with its checkpoint: appends refuse, so
requests fail closed, until ``clavis-mcp audit acknowledge-loss`` records the loss in the log.
:meth:`AuditLog.check_writable`, run before a request leaves, refuses whenever that append would.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from ..errors import AuditWriteError, ClavisError, VaultCorrupted
from ..store import Vault
from .anchor import SLOT_BYTES, VaultAnchor
from .chain import (
    LOST_FROM,
    MAC,
    PREV,
    REANCHORED,
    REPAIRED,
    SEQ,
    ChainVerifier,
    Link,
    VerifyReport,
    authentic,
    link_of,
    sealed_line,
)
from .files import AppendLock, LiveFile, LogFiles, lines_from, process_id
from .index import IndexKeeper

AUDIT_FILE = "audit.jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # rotate the live file at this size

# Field names of a record, the single vocabulary for writers, readers and tests.
ID, TIME, SOURCE, SERVICE, METHOD, SCHEME, HOST, PORT, PATH = (
    "id", "time", "source", "service", "method", "scheme", "host", "port", "path",
)  # fmt: skip
STATUS, BYTES, DURATION_MS, DECISION, REASON, REDACTIONS, ACTION = (
    "status", "bytes", "duration_ms", "decision", "reason", "redactions", "action",
)  # fmt: skip
FIELDS = (ID, TIME, SOURCE, SERVICE, METHOD, SCHEME, HOST, PORT, PATH, STATUS, BYTES, DURATION_MS,
          DECISION, REASON, REDACTIONS, ACTION)  # fmt: skip
CHAIN_FIELDS = (SEQ, PREV, MAC, LOST_FROM, REPAIRED, REANCHORED)  # written by the log itself

INJECTED, REFUSED, PASSED, ERROR, LOST = "injected", "refused", "passed", "error", "lost"
ACKNOWLEDGE_LOSS = "acknowledge-loss"  # the action of the record that acknowledges lost records
REPAIR = "repair"  # the action of the record that re-anchors a damaged checkpoint
# A signing key traded for a short-lived token (the proxy before a request, get_credentials before a reveal).
TOKEN_EXCHANGE, EXCHANGED, EXCHANGE_FAILED = "token-exchange", "exchanged", "failed"
REANCHOR = "reanchored"  # its decision (LOST when it also acknowledges lost records)
MARK_EVERY = 1000  # records one process writes between two raises of the vault's mark ...
MARK_SECONDS = 10.0  # ... or seconds, whichever comes first
_IDS_AT_ONCE = 256  # record ids drawn from the system at once (see ``_Ids``)

_SET_BY_LOG = {ID, TIME}
_GIVEN = frozenset(FIELDS) - _SET_BY_LOG
_SCALARS = (str, int, float, bool)
_PLAIN_TYPES = frozenset(_SCALARS)


def path_without_query_values(path: str) -> str:
    """``/v1/x?key=abc&b=2`` becomes ``/v1/x?key=&b=``: names help a review, values may be secrets.

    The path is kept as sent (a URL parser would read ``//host/x`` as a host and a path). The
    names are read as ``parse_qsl(query, keep_blank_values=True)`` reads them (fields split at
    ``&``, empty ones skipped, each name up to its first ``=``, ``+`` and ``%XX`` decoded), without
    decoding the values it would throw away: one request's whole query, on the proxy's path."""
    path, sep, query = path.partition("?")
    if not sep or not query:
        return path or "/"
    names = [unquote_plus(field.partition("=")[0]) for field in query.split("&") if field]
    return (path or "/") + "?" + "&".join(f"{name}=" for name in names)


@dataclass(frozen=True, slots=True)
class Loss:
    """Records ``first``-``last`` are gone from the end of the log; ``after`` is the last known one."""

    first: int
    last: int
    after: Link

    def describe(self) -> str:
        return f"records {self.first}-{self.last}"


def highest(*links: Link | None) -> Link | None:
    return max((link for link in links if link is not None), key=lambda link: link.seq, default=None)


def cut_below(end: Link | None, high: Link | None) -> bool:
    """Whether a chain ending at ``end`` lost records that ``high`` (the vault's mark, or a record
    this process wrote) says existed: it ends lower, or at the same place with another record."""
    if high is None:
        return False
    return end is None or end.seq < high.seq or (end.seq == high.seq and end.mac != high.mac)


def pending_loss(kept: Link | None, checkpoint: Link | None, high: Link | None) -> Loss | None:
    """What ``acknowledge-loss`` would record: the records after the log's last genuine one
    (``kept``) up to the highest one the checkpoint, the vault's mark or this process knows."""
    after = highest(checkpoint, high)
    if after is None or (kept is not None and kept.seq >= after.seq):
        return None
    return Loss(kept.seq + 1 if kept else 1, after.seq, after)


def mark_due(written: int, marked: int, since: float | None, new_file: bool) -> bool:
    """Whether record ``written`` should raise the vault's mark, last raised or read at ``marked``,
    ``since`` seconds ago by this process (None: not yet raised by this process)."""
    if since is None or new_file:
        return True
    return written > marked and (written - marked >= MARK_EVERY or since >= MARK_SECONDS)


VAULT_FILE = "vault.db"  # the vault's database beside the log (vault/store.py's DB_NAME)


@dataclass(frozen=True, slots=True)
class VaultFile:
    """The vault's file as this process opened it: a running proxy whose vault was deleted or
    replaced (another ``init``) must stop injecting from what it still holds in memory, and
    could not anchor its records in a vault that is gone. One ``stat`` before each request."""

    path: Path
    identity: tuple[int, int]  # (device, inode)
    name: str  # the path as ``stat`` takes it, converted once rather than once per request

    @classmethod
    def of(cls, path: Path) -> VaultFile | None:
        try:
            found = os.stat(path)
        except OSError:
            return None  # a vault without a file of its own (in memory, or a team server's)
        return cls(path, (found.st_dev, found.st_ino), os.fspath(path))

    def check(self) -> None:
        try:
            found = os.stat(self.name)
            now: tuple[int, int] | None = (found.st_dev, found.st_ino)
        except FileNotFoundError:
            now = None
        if now != self.identity:
            what = "deleted" if now is None else "replaced by another vault"
            raise AuditWriteError(
                f"the vault {self.path} was {what} while this process was running; it injects nothing more "
                "and requests are refused: restore the vault from a backup (or `clavis-mcp init` a new one) "
                "and restart this process"
            )


def _now() -> str:
    """``datetime.now(UTC).isoformat(timespec="milliseconds")``, the date and time of day
    formatted once a second rather than once a record."""
    second, milli = divmod(time.time_ns() // 1_000_000, 1000)
    return f"{_second_text(second)}.{milli:03d}+00:00"


@functools.lru_cache(maxsize=2)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).replace(tzinfo=None).isoformat()


class _Ids:
    """Record ids, 8 bytes of ``os.urandom`` each, drawn :data:`_IDS_AT_ONCE` at a time: one
    ``getrandom`` system call per record cost a proxied request about 4 us of CPU. They are
    written out in hex once per draw from the system, so a record only pops one. A forked child
    draws afresh, so it never hands out the ids left in the pool it inherited from its parent."""

    __slots__ = ("_pool", "_process")

    def __init__(self) -> None:
        self._pool: list[str] = []
        self._process = 0

    def draw(self) -> str:
        if not self._pool or self._process != process_id():
            drawn = os.urandom(8 * _IDS_AT_ONCE).hex()
            self._pool, self._process = [drawn[at : at + 16] for at in range(0, len(drawn), 16)], process_id()
        return self._pool.pop()


class _ChainCut(Exception):
    """The chain ends below what is known to have existed (raised under ``log``'s append lock)."""

    def __init__(self, log: AuditLog, end: Link | None, high: Link) -> None:
        self.log, self.end, self.high = log, end, high


class AuditLog:
    """Build with :meth:`for_vault`; safe to share between threads and to use from many processes.

    :meth:`close` on a clean shutdown raises the vault's mark to this process's last record."""

    def __init__(self, path: Path, anchor: VaultAnchor, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.files = LogFiles(path)
        self._live = LiveFile(self.files)
        self._append_lock = AppendLock(self.files.lock_path)
        self._anchor = anchor
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        # (inode, size) of the live file right after this object's last append, and that record's
        # link: while the file is exactly as we left it, nobody else appended and the chain ends
        # there, so the file's tail and the vault checkpoint need not be read again.
        self._tail: tuple[tuple[int, int], Link] | None = None
        # The highest record this process knows existed: the vault's mark when last read or
        # raised, or a record it wrote since. None until the mark has been read.
        self._high: Link | None = None
        self._marked: tuple[int, float | None] | None = None  # (mark's seq, monotonic time we raised it)
        self._vault_file: VaultFile | None = None  # the vault's file as it was opened, if it has one
        self._index = IndexKeeper(self.files)  # the review index kept current, off the append path
        self._ids = _Ids()  # record ids, drawn under ``_lock``
        self._failing_closed = _FailingClosed(path)  # every failure to write, or to trust the chain's end

    @classmethod
    def for_vault(cls, vault: Vault, path: Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AuditLog:
        """The log beside the vault, keyed and checkpointed by it."""
        path = path or vault.home / AUDIT_FILE
        log = cls(path, VaultAnchor(vault, LogFiles(path).lock_path), max_bytes=max_bytes)
        log._vault_file = VaultFile.of(vault.home / VAULT_FILE)
        return log

    def append(self, **fields: Any) -> str:
        """Write one record; return its id. Unknown fields or non-scalar values are programming errors."""
        if not _GIVEN.issuperset(fields):
            raise ValueError(f"unknown audit fields: {sorted(set(fields) - _GIVEN)}")
        record: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
        if not _PLAIN_TYPES.issuperset(map(type, record.values())):  # one pass in C; subclasses asked below
            for name, value in record.items():
                if not isinstance(value, _SCALARS):
                    raise ValueError(f"audit field {name!r} must be a plain value, not {type(value).__name__}")
        if PATH in record:
            record[PATH] = path_without_query_values(record[PATH])
        with self._lock, self._failing_closed:
            record[ID] = record_id = self._ids.draw()
            self._known_mark()
            with self._append_lock as lock:
                # The time is taken under the lock, so the log is in time order across processes.
                record[TIME] = _now()
                state = self._live.state()
                ours = self._tail if self._tail is not None and self._tail[0] == state else None
                previous = ours[1] if ours is not None else self._continued_end(lock)
                sealed, line, due = self._put(record, previous, state, lock, clean_end=ours is not None)
            if due is not None:
                with suppress(sqlite3.Error):  # the record is written; the mark is raised by a later one
                    self._raise_mark(due)
        self._index.poke(line, sealed)
        return record_id

    def check_writable(self) -> None:
        """Raise AuditWriteError now rather than after a request has gone out: pass only when the
        append that records the request will not refuse.

        Free while the live file is exactly as this process's last record left it (the next
        record then chains on that one). If it has only grown (others appended, or someone cut
        it and padded it past its old size), the checkpoint is read, without the lock: the append
        will chain on it or on a later record, so it must reach the highest record this process
        knows of. Otherwise, and until an append follows a cut found earlier, the chain's end is
        found under the lock and held to the vault's mark, as the append will.

        First the vault's file must still be the one this process opened (:class:`VaultFile`);
        then the space its record will take is reserved (``LogFiles.reserve``): a full
        disk refuses the request here, before it leaves, not its record after the response."""
        if self._vault_file is not None:
            self._vault_file.check()
        with self._failing_closed:
            self.files.reserve()  # room for this request's record even if the disk fills meanwhile
        state = self._live.state()
        if self._tail is not None and self._tail[0] == state:
            return
        with self._lock, self._failing_closed:
            with self.files.probed() as fd:
                if self._tail is not None and _grown(self._tail[0], state) and self._checkpoint_reaches_high(fd):
                    return
            self._known_mark()
            with self._append_lock as lock:
                self._continued_end(lock)

    def close(self) -> None:
        """On a clean shutdown: raise the vault's mark to this process's last record, so no
        record of it can be cut undetected, and close the live file."""
        self._index.close()
        with self._lock, self._failing_closed:
            if self._tail is not None and self._marked is not None and self._tail[1].seq > self._marked[0]:
                with self._append_lock as lock:
                    self._live.sync(folder=False)
                    os.fsync(lock)
                self._raise_mark(self._tail[1])
            self._live.close()
            self._append_lock.close()
            self.files.close()

    def pending_loss(self) -> Loss | None:
        """The records lost from the end of the log, if any: what :meth:`acknowledge_loss` would record."""
        with self._lock:
            self._read_mark()
            with self._append_lock as lock:
                return pending_loss(self._last_genuine(), self._anchor.head(lock), self._high)

    def acknowledge_loss(self, *, source: str) -> dict[str, Any] | None:
        """Record, as the next record of the chain, that the records after the log's last genuine
        one are lost; then appends resume. Returns that record, or None if nothing is lost.

        The record follows the highest record known (so sequence numbers never repeat) and carries
        ``lost_from``; ``verify`` accepts the gap it names and reports it ever after."""
        record: dict[str, Any] = {ID: os.urandom(8).hex(), SOURCE: source, ACTION: ACKNOWLEDGE_LOSS, DECISION: LOST}
        with self._lock, self._failing_closed:
            self._read_mark()
            with self._append_lock as lock:
                loss = pending_loss(self._last_genuine(), self._anchor.head(lock), self._high)
                if loss is None:
                    return None
                record[TIME] = _now()
                record[REASON] = f"{loss.describe()} were lost from the end of the log; acknowledged"
                record[LOST_FROM] = loss.first
                sealed, _, due = self._put(record, loss.after, self._live.state(), lock, clean_end=False, mark=True)
            assert due is not None
            self._raise_mark(due)
        return sealed

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first, across rotated files."""
        for number, _ in self.files.numbered():
            handle = self.files.open(number)
            if handle is None:
                continue
            with handle:
                for _, line in lines_from(handle, 0):
                    yield json.loads(line)

    def verify(self) -> VerifyReport:
        """Check every record's MAC, the links between them, the checkpoint and the vault's mark.

        Read in the order they are written (mark, checkpoint, log), so appends running meanwhile
        only ever put the log ahead of what it is compared with. A checkpoint damaged in both
        slots is reported with the way out (``audit repair``), after the records themselves."""
        mark = self._anchor.mark()
        try:
            checkpoint = self._anchor.head()
        except VaultCorrupted as exc:
            report = self._verify_chain(None, mark)
            if not report.ok and report.location != self.files.lock_path.name:
                return report
            return replace(report, problem=_damaged_checkpoint(exc), location=self.files.lock_path.name)
        return self._verify_chain(checkpoint, mark)

    def checkpoint_damaged(self) -> bool:
        """Whether both checkpoint slots are damaged: what ``audit repair`` fixes."""
        try:
            self._anchor.head()
        except VaultCorrupted:
            return True
        return False

    def repair_checkpoint(self, *, source: str) -> dict[str, Any] | None:
        """Re-anchor a checkpoint damaged in both slots at the log's last genuine record, and
        record that as the next record of the chain (``reanchored``; with ``lost_from`` too if
        the vault's mark says records existed past it). None if the checkpoint is not damaged.

        Refuses (AuditWriteError) when the records themselves do not verify: a repair vouches
        only for a chain that is whole up to where it re-anchors."""
        with self._lock, self._failing_closed:
            self._read_mark()
            with self._append_lock as lock:
                try:
                    self._anchor.head(lock)
                    return None
                except VaultCorrupted:
                    pass
                report = self._verify_chain(None, None)
                if not report.ok and report.location != self.files.lock_path.name:
                    raise AuditWriteError(
                        f"the audit log does not verify ({report.summary()}); `audit repair` re-anchors "
                        "only a log whose records are whole: restore the log from a backup, or keep it as evidence"
                    )
                kept = self._last_genuine()
                if os.pwrite(lock, b"\0" * (2 * SLOT_BYTES), 0) != 2 * SLOT_BYTES:
                    raise OSError("short write of the audit log checkpoint")
                at = kept.seq if kept else 0
                record: dict[str, Any] = {ID: os.urandom(8).hex(), SOURCE: source, ACTION: REPAIR, DECISION: REANCHOR}
                record[TIME] = _now()
                record[REANCHORED] = at
                record[REASON] = (
                    f"both checkpoint slots in {self.files.lock_path.name} were damaged; "
                    f"re-anchored at record {at}, the log's last genuine record, after inspection"
                )
                loss = pending_loss(kept, None, self._high)
                if loss is not None:
                    record[LOST_FROM], record[DECISION] = loss.first, LOST
                    record[REASON] += f"; {loss.describe()} were lost from the end of the log"
                previous = loss.after if loss is not None else kept
                sealed, _, due = self._put(record, previous, self._live.state(), lock, clean_end=False, mark=True)
            assert due is not None
            self._raise_mark(due)
        return sealed

    def _verify_chain(self, checkpoint: Link | None, mark: Link | None) -> VerifyReport:
        verifier = ChainVerifier(self._anchor.key, checkpoint, mark, self.files.lock_path.name)
        numbered = self.files.numbered()
        for number, path in numbered:
            handle = self.files.open(number)
            if handle is None:
                continue
            with handle:
                for line_no, raw in enumerate(handle, start=1):
                    if raw.strip():
                        verifier.feed(path.name, line_no, raw, last_file=number == numbered[-1][0])
                    if verifier.broken:
                        return verifier.finish()
        return verifier.finish()

    def _put(
        self,
        record: dict[str, Any],
        previous: Link | None,
        state: tuple[int, int] | None,
        lock: int,
        *,
        clean_end: bool,
        mark: bool = False,
    ) -> tuple[dict[str, Any], bytes, Link | None]:
        """Seal ``record`` after ``previous``, write it and its checkpoint; return it as written, its
        line, and its link if the vault's mark is due (or ``mark``): the files are then synced, for
        the caller to raise the mark outside the append lock."""
        self._tail = None
        if not clean_end and state is not None:
            key = self._anchor.key
            cut = self._live.repair(state, keep=lambda tail: _is_record(key, tail, previous))
            if cut:
                record = {**record, REPAIRED: cut}
                state = (state[0], state[1] - cut)
        sealed, line = sealed_line(self._anchor.key, previous, record)
        after = self._live.write(line, state, self._max_bytes, clean_end=clean_end)
        link = link_of(sealed)
        self._anchor.advance(link, lock)
        self._tail = (after, link)
        if self._high is None or link.seq > self._high.seq:
            self._high = link
        assert self._marked is not None
        new_file = state is None or state[0] != after[0]
        since = None if self._marked[1] is None else time.monotonic() - self._marked[1]
        if not (mark or mark_due(link.seq, self._marked[0], since, new_file)):
            return sealed, line, None
        self._live.sync(folder=new_file)
        os.fsync(lock)
        return sealed, line, link

    def _known_mark(self) -> None:
        """Read the vault's mark once per process (a query and an unseal), before the first record."""
        if self._marked is None:
            self._read_mark()

    def _read_mark(self) -> None:
        mark = self._anchor.mark()
        self._high = highest(self._high, mark)
        if self._marked is None:
            self._marked = (mark.seq if mark else 0, None)

    def _raise_mark(self, link: Link) -> None:
        mark = self._anchor.raise_mark(link)
        self._high = highest(self._high, mark)
        self._marked = (mark.seq, time.monotonic())

    def _checkpoint_reaches_high(self, fd: int) -> bool:
        """Whether the checkpoint, read without the lock, is at or past the highest record this
        process knows of: then the chain does not end below it. A slot rewritten meanwhile does
        not open and leaves the other, one record behind: enough, as what this process knows of
        was complete before."""
        return self._high is None or self._anchor.reaches(self._high, fd)

    def _continued_end(self, lock: int) -> Link | None:
        """The chain's end, unless it lost records the vault's mark or this process knows of."""
        end = self._chain_end(lock)
        if self._high is not None and cut_below(end, self._high):
            raise _ChainCut(self, end, self._high)
        return end

    def _last_genuine(self) -> Link | None:
        """The log's last record, if it is genuine (its MAC matches)."""
        line = self.files.last_line()
        if line is None:
            return None
        try:
            last = json.loads(line)
        except ValueError:
            return None
        return link_of(last) if isinstance(last, dict) and authentic(self._anchor.key, last) else None

    def _chain_end(self, lock: int) -> Link | None:
        """What the next record follows: the log's last record if it is genuine and not behind
        the checkpoint (it may be ahead of it after a crash or a torn checkpoint slot), else the
        checkpoint, so that a cut or edited end stays visible to verify, not papered over."""
        try:
            checkpoint = self._anchor.head(lock)
        except VaultCorrupted as exc:
            raise AuditWriteError(
                f"cannot write the audit log {self.path}: {exc} in both slots; requests are refused until it is "
                "repaired: inspect the log with `clavis-mcp audit verify`, then run `clavis-mcp audit repair --yes`"
            ) from None
        tail = self._last_genuine()
        if tail is not None and (checkpoint is None or tail.seq > checkpoint.seq or tail == checkpoint):
            return tail
        return checkpoint


class _FailingClosed:
    """Turns every failure to write the log at ``path``, or to trust where its chain ends, into
    AuditWriteError. One per log, entered twice for every proxied request: it holds only the path
    (a cut names its log), so it keeps no cycle with the log."""

    __slots__ = ("_path",)

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is None:
            return
        if isinstance(exc, _ChainCut):
            log = exc.log
            log._tail = None  # no shortcut past a cut: every check finds the chain's end until it is whole
            if log._marked is None or exc.high.seq > log._marked[0]:
                # A record this process wrote is above the vault's mark: put it there, so that the
                # acknowledgement (by another process) names every lost record.
                with suppress(sqlite3.Error, ClavisError):  # the refusal below says what matters
                    log._raise_mark(exc.high)
            raise AuditWriteError(_cut_message(self._path, exc)) from None
        if isinstance(exc, (OSError, sqlite3.Error, ClavisError)) and not isinstance(exc, AuditWriteError):
            raise AuditWriteError(
                f"cannot write the audit log {self._path} ({_why(exc)}); "
                "requests are refused until it is writable (check disk space and permissions)"
            ) from None


def _is_record(key: bytes, tail: bytes, link: Link | None) -> bool:
    """Whether a torn tail is the genuine record ``link`` (the one the next record follows) that
    only lost its newline: it is finished, not cut, so its evidence survives."""
    if link is None:
        return False
    try:
        record = json.loads(tail)
    except ValueError:
        return False
    return isinstance(record, dict) and authentic(key, record) and link_of(record) == link


def _grown(before: tuple[int, int], now: tuple[int, int] | None) -> bool:
    """The live file is the one this process wrote last, and only longer: others appended."""
    return now is not None and now[0] == before[0] and now[1] >= before[1]


def _cut_message(path: Path, cut: _ChainCut) -> str:
    ends = f"end at record {cut.end.seq}" if cut.end else "are empty or gone"
    return (
        f"the audit log {path} has lost records: at least {cut.high.seq} records existed, but the log "
        f"and its checkpoint {ends} (deleted, cut or rolled back); requests are refused until the loss "
        "is recorded: see `clavis-mcp audit verify`, then run `clavis-mcp audit acknowledge-loss`"
    )


def _damaged_checkpoint(exc: VaultCorrupted) -> str:
    return (
        f"{exc} in both slots, so the log's end cannot be checked and appends (and requests) are refused; "
        "if the records above are what you expect, re-anchor it with `clavis-mcp audit repair --yes` "
        "(the repair is recorded in the log)"
    )


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
