"""The audit log: one JSON line per decision, never a header value, body or query value.

Tamper-evident: each record carries an HMAC-SHA256 over its content and the previous
record's MAC, keyed by a key held in the vault, and a checkpoint of the last record, sealed
with the vault key, exposes a cut end (see ``audit_chain`` and ``audit_anchor``). Appends
from every process are serialised by a file lock, so the chain has one order; each record is
one ``write`` to the kernel before the request it records is let through. A write that fails raises
AuditWriteError and the caller refuses the request (fail closed, like mitmproxy's ``save``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from .audit_anchor import VaultAnchor
from .audit_chain import MAC, PREV, SEQ, ChainVerifier, Link, VerifyReport, authentic, encode, link_of, seal
from .audit_files import LiveFile, LogFiles, lines_from
from .errors import AuditWriteError, ClavisError
from .store import Vault

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
CHAIN_FIELDS = (SEQ, PREV, MAC)  # written by the log itself

INJECTED, REFUSED, PASSED, ERROR = "injected", "refused", "passed", "error"

_SET_BY_LOG = {ID, TIME}
_GIVEN = frozenset(FIELDS) - _SET_BY_LOG
_SCALARS = (str, int, float, bool)


def path_without_query_values(path: str) -> str:
    """``/v1/x?key=abc&b=2`` becomes ``/v1/x?key=&b=``: names help a review, values may be secrets.

    The path is kept as sent (a URL parser would read ``//host/x`` as a host and a path)."""
    path, sep, query = path.partition("?")
    if not sep or not query:
        return path or "/"
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    return (path or "/") + "?" + "&".join(f"{name}=" for name in names)


class AuditLog:
    """Build with :meth:`for_vault`; safe to share between threads and to use from many processes."""

    def __init__(self, path: Path, anchor: VaultAnchor, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.files = LogFiles(path)
        self._live = LiveFile(self.files)
        self._anchor = anchor
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        # (inode, size) of the live file right after this object's last append, and that record's
        # link: while the file is exactly as we left it, nobody else appended and the chain ends
        # there, so the file's tail and the vault checkpoint need not be read again.
        self._tail: tuple[tuple[int, int], Link] | None = None

    @classmethod
    def for_vault(cls, vault: Vault, path: Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AuditLog:
        """The log beside the vault, keyed and checkpointed by it."""
        path = path or vault.home / AUDIT_FILE
        return cls(path, VaultAnchor(vault, LogFiles(path).lock_path), max_bytes=max_bytes)

    def append(self, **fields: Any) -> str:
        """Write one record; return its id. Unknown fields or non-scalar values are programming errors."""
        if not _GIVEN.issuperset(fields):
            raise ValueError(f"unknown audit fields: {sorted(set(fields) - _GIVEN)}")
        for name, value in fields.items():
            if value is not None and not isinstance(value, _SCALARS):
                raise ValueError(f"audit field {name!r} must be a plain value, not {type(value).__name__}")
        record: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if PATH in record:
            record[PATH] = path_without_query_values(record[PATH])
        record[ID] = os.urandom(8).hex()
        with self._lock:
            try:
                with self.files.locked() as lock:
                    # The time is taken under the lock, so the log is in time order across processes.
                    record[TIME] = datetime.now(UTC).isoformat(timespec="milliseconds")
                    state = self._live.state()
                    ours = self._tail is not None and self._tail[0] == state
                    sealed = seal(self._anchor.key, self._tail[1] if ours else self._chain_end(lock), record)
                    self._tail = None
                    state = self._live.write(encode(sealed), state, self._max_bytes, clean_end=ours)
                    self._anchor.advance(link_of(sealed), lock)
                    self._tail = (state, link_of(sealed))
            except (OSError, sqlite3.Error, ClavisError) as exc:
                raise AuditWriteError(
                    f"cannot write the audit log {self.path} ({_why(exc)}); "
                    "requests are refused until it is writable (check disk space and permissions)"
                ) from None
        return record[ID]

    def check_writable(self) -> None:
        """Raise AuditWriteError now rather than after a request has gone out.

        Free while the live file is exactly as this process's last record left it (the file is
        open for writing and the lock was just taken); otherwise both files are opened to see."""
        try:
            if self._tail is not None and self._tail[0] == self._live.state():
                return
            self.files.probe()
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write the audit log {self.path} ({_why(exc)}); requests are refused until it is writable"
            ) from None

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
        """Check every record's MAC, the links between them, and the checkpoint."""
        verifier = ChainVerifier(self._anchor.key, self._anchor.head())
        for number, path in self.files.numbered():
            handle = self.files.open(number)
            if handle is None:
                continue
            with handle:
                for line_no, raw in enumerate(handle, start=1):
                    if raw.strip():
                        verifier.feed(path.name, line_no, raw)
                    if verifier.broken:
                        return verifier.finish()
        return verifier.finish()

    def _chain_end(self, lock: int) -> Link | None:
        """What the next record follows: the log's last record if it is genuine and not behind
        the checkpoint (it may be ahead of it after a crash or a torn checkpoint slot), else the
        checkpoint, so that a cut or edited end stays visible to verify, not papered over."""
        checkpoint = self._anchor.head(lock)
        line = self.files.last_line()
        if line is not None:
            try:
                last = json.loads(line)
            except ValueError:
                last = None
            if isinstance(last, dict) and authentic(self._anchor.key, last):
                tail = link_of(last)
                if checkpoint is None or tail.seq > checkpoint.seq or tail == checkpoint:
                    return tail
        return checkpoint


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
