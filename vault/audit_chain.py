"""The audit chain: each record carries an HMAC over its content and its predecessor's MAC.

The MAC key lives in the vault, so whoever can edit the log file cannot recompute a MAC:
an edited record fails its own MAC, and a deleted, moved or inserted record breaks the
sequence numbers or the ``prev`` link of the record after it. A checkpoint (the last
sequence number and MAC) kept in the vault exposes a log cut short at the end, which the
chain alone cannot show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

SEQ, PREV, MAC = "seq", "prev", "mac"
GENESIS = "0" * 64  # the ``prev`` of record 1
_DOMAIN = b"clavis-mcp audit v1\n"


@dataclass(frozen=True, slots=True)
class Link:
    """A position in the chain: a record's sequence number and MAC."""

    seq: int
    mac: str


def canonical(record: dict[str, Any]) -> bytes:
    """The one byte form a record is MAC'd and stored in: sorted keys, no spaces, ASCII only."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(key: bytes, unsigned: dict[str, Any]) -> str:
    return hmac.new(key, _DOMAIN + canonical(unsigned), hashlib.sha256).hexdigest()


def seal(key: bytes, previous: Link | None, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as the record that follows ``previous`` (None: the first record)."""
    record = dict(fields)
    record[SEQ] = previous.seq + 1 if previous else 1
    record[PREV] = previous.mac if previous else GENESIS
    record[MAC] = _mac(key, record)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return canonical(record) + b"\n"


def authentic(key: bytes, record: dict[str, Any]) -> bool:
    """True when the record's MAC matches its content: it was written by a holder of the key."""
    claimed = record.get(MAC)
    if not isinstance(claimed, str) or not isinstance(record.get(SEQ), int) or not isinstance(record.get(PREV), str):
        return False
    unsigned = {k: v for k, v in record.items() if k != MAC}
    return hmac.compare_digest(_mac(key, unsigned), claimed)


def link_of(record: dict[str, Any]) -> Link:
    return Link(record[SEQ], record[MAC])


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of ``audit verify``: OK with a count, or the first problem and where it is."""

    count: int
    files: int
    problem: str | None = None
    location: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.ok:
            noun = "record" if self.count == 1 else "records"
            return f"OK: {self.count} {noun} in {self.files} file(s), chain and checkpoint intact"
        return f"BROKEN at {self.location}: {self.problem}"


class ChainVerifier:
    """Feed lines in log order; stops at the first problem, then :meth:`finish` gives the report."""

    def __init__(self, key: bytes, checkpoint: Link | None) -> None:
        self._key = key
        self._checkpoint = checkpoint
        self._last: Link | None = None
        self._count = 0
        self._files: set[str] = set()
        self._problem: tuple[str, str] | None = None

    @property
    def broken(self) -> bool:
        return self._problem is not None

    def feed(self, file: str, line_no: int, line: bytes) -> None:
        if self._problem:
            return
        self._files.add(file)
        where = f"{file} line {line_no}"
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self._problem = (where, "not a readable record (a torn write, or the line was edited)")
            return
        if not authentic(self._key, record):
            what = f"record {record.get(SEQ)!r} (id {record.get('id')!r})"
            self._problem = (where, f"{what} was altered or forged: its MAC does not match its content")
            return
        expected = self._last.seq + 1 if self._last else 1
        expected_prev = self._last.mac if self._last else GENESIS
        if record[SEQ] != expected or record[PREV] != expected_prev:
            self._problem = (
                where,
                f"expected record {expected}, found record {record[SEQ]}: "
                "records were deleted, inserted or reordered here",
            )
            return
        if self._checkpoint and record[SEQ] == self._checkpoint.seq and record[MAC] != self._checkpoint.mac:
            self._problem = (where, f"record {record[SEQ]} is not the one the checkpoint recorded")
            return
        self._last = link_of(record)
        self._count += 1

    def finish(self) -> VerifyReport:
        files = len(self._files)
        if self._problem:
            return VerifyReport(self._count, files, self._problem[1], self._problem[0])
        last_seq = self._last.seq if self._last else 0
        if self._checkpoint and self._checkpoint.seq > last_seq:
            return VerifyReport(
                self._count,
                files,
                f"the log ends at record {last_seq} but the checkpoint records {self._checkpoint.seq}: "
                f"records {last_seq + 1}-{self._checkpoint.seq} were removed from the end",
                "end of log",
            )
        return VerifyReport(self._count, files)
