"""The audit chain: each record carries an HMAC over its content and its predecessor's MAC.

The MAC key lives in the vault, so whoever can edit the log file cannot recompute a MAC:
an edited record fails its own MAC, and a deleted, moved or inserted record breaks the
sequence numbers or the ``prev`` link of the record after it. A checkpoint (the last
sequence number and MAC) exposes a log cut short at the end, which the chain alone cannot
show, and the vault's sealed high-water mark exposes a checkpoint that was deleted or rolled
back with the log (see ``audit_anchor``).

Records lost for good are acknowledged, not hidden: ``AuditLog.acknowledge_loss`` writes a
record carrying ``lost_from``, which follows the last record still in the log and takes the
sequence number after the highest one known, so ``verify`` accepts the gap it names and
reports it with every later run.

A record torn by a failed append (half a line at the end of the live file, never covered by
the checkpoint) is cut off by the next append, and that record carries ``repaired`` (how many
bytes were cut): the repair is part of the chain, and ``verify`` counts it. A torn line that a
checkpoint covers, or one in the middle, is still reported as damage. Until the next append,
``verify`` reports the torn tail as waiting for that repair, and the checkpoint still bounds it.

When both checkpoint slots are damaged, ``audit repair`` re-anchors the checkpoint at the log's
last genuine record and writes a record carrying ``reanchored`` (that record's number).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from bisect import bisect_right
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

SEQ, PREV, MAC, LOST_FROM = "seq", "prev", "mac", "lost_from"
REPAIRED, REANCHORED = "repaired", "reanchored"  # bytes of a torn tail cut; record re-anchored at
GENESIS = "0" * 64  # the ``prev`` of record 1
_DOMAIN = b"clavis-mcp audit v1\n"
_BLOCK = 64  # SHA-256's block size: HMAC pads the key to it


@dataclass(frozen=True, slots=True)
class Link:
    """A position in the chain: a record's sequence number and MAC."""

    seq: int
    mac: str


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
# Its C encoder (CPython's ``_json``), made once: ``JSONEncoder.encode`` builds a new one for every
# call, two Python frames and a fresh object per record (a twentieth of an append's instructions).
# The arguments ``JSONEncoder.iterencode`` passes, so the bytes are the same; no circular-reference
# markers, as a record is flat (and one that was not could not be a cycle read from JSON).
_ENCODE = c_make_encoder(None, _CANONICAL.default, encode_basestring_ascii, None, ":", ",", True, False, True)


def canonical(record: dict[str, Any]) -> bytes:
    """The one byte form a record is MAC'd and stored in: sorted keys, no spaces, ASCII only."""
    return "".join(_ENCODE(record, 0)).encode()


def _mac(key: bytes, unsigned: dict[str, Any]) -> str:
    return _mac_of(key, canonical(unsigned))


def _mac_of(key: bytes, body: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of ``_DOMAIN + body``, from the key's two pads hashed once per key:
    five calls into hashlib, where ``hmac.HMAC``'s copy, update and hexdigest are Python methods
    (seven frames per record on the proxy's path). A test holds it equal to ``hmac.new``."""
    inner_pad, outer_pad = _keyed(key)
    inner, outer = inner_pad.copy(), outer_pad.copy()
    inner.update(body)
    outer.update(inner.digest())
    return outer.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after ``key XOR ipad`` with the domain, and after ``key XOR opad``."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
    inner.update(_DOMAIN)
    return inner, hashlib.sha256(bytes(byte ^ 0x5C for byte in key))


def seal(key: bytes, previous: Link | None, fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` as the record that follows ``previous`` (None: the first record)."""
    record = dict(fields)
    record[SEQ] = previous.seq + 1 if previous else 1
    record[PREV] = previous.mac if previous else GENESIS
    record[MAC] = _mac(key, record)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return canonical(record) + b"\n"


def sealed_line(key: bytes, previous: Link | None, fields: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``seal`` and ``encode`` in one: the record and its line, serialised once (the proxy writes
    one per request). The MAC'd form lacks only ``"mac":"..."``, which goes in before the first
    key that sorts after it: ``,"`` never occurs inside a JSON string (its quotes are escaped),
    so the first ``,"key":`` is that key's own place. That key is found by bisecting the sorted
    names (two calls into C; a comprehension comparing each name cost a tenth of an append)."""
    record = dict(fields)
    record[SEQ] = previous.seq + 1 if previous else 1
    record[PREV] = previous.mac if previous else GENESIS
    names = sorted(record)
    after = bisect_right(names, MAC)  # names[after] exists: ``seq`` and ``prev`` sort after it
    body = canonical(record)
    mac = record[MAC] = _mac_of(key, body)
    at = body.index(b',"' + names[after].encode() + b'":') + 1 if after else 1  # else: after the brace
    return record, b"".join((body[:at], b'"mac":"', mac.encode(), b'",', body[at:], b"\n"))


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
    """The outcome of ``audit verify``: OK with a count, or the first problem and where it is.

    ``losses``: the gaps acknowledged with ``audit acknowledge-loss``, as (first, last) lost
    sequence numbers; they stay in every report, so an acknowledged loss is never forgotten."""

    count: int
    files: int
    problem: str | None = None
    location: str | None = None
    losses: tuple[tuple[int, int], ...] = ()
    repairs: int = 0
    reanchored: tuple[int, ...] = ()
    torn_tail: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if not self.ok:
            return f"BROKEN at {self.location}: {self.problem}"
        noun = "record" if self.count == 1 else "records"
        text = f"OK: {self.count} {noun} in {self.files} file(s), chain and checkpoint intact"
        if self.losses:
            text += "; acknowledged loss of " + ", ".join(f"records {a}-{b}" for a, b in self.losses)
        if self.repairs:
            text += f"; {self.repairs} torn record(s) of failed appends cut off"
        if self.reanchored:
            text += "; checkpoint re-anchored (audit repair) at record " + ", ".join(map(str, self.reanchored))
        if self.torn_tail:
            text += f"; {self.torn_tail} ends with a torn record of a failed append, cut off by the next append"
        return text


class ChainVerifier:
    """Feed lines in log order; stops at the first problem, then :meth:`finish` gives the report.

    ``checkpoint`` is the lock file's (named ``checkpoint_file`` in reports), ``mark`` the
    vault's high-water mark: the log must reach both, and the checkpoint must reach the mark."""

    def __init__(
        self, key: bytes, checkpoint: Link | None, mark: Link | None = None, checkpoint_file: str = "the lock file"
    ) -> None:
        self._key = key
        self._checkpoint = checkpoint
        self._mark = mark
        self._checkpoint_file = checkpoint_file
        self._last: Link | None = None
        self._count = 0
        self._files: set[str] = set()
        self._losses: list[tuple[int, int]] = []
        self._repairs = 0
        self._reanchored: list[int] = []
        self._torn: str | None = None
        self._problem: tuple[str, str] | None = None

    @property
    def broken(self) -> bool:
        return self._problem is not None

    def feed(self, file: str, line_no: int, line: bytes, *, last_file: bool = False) -> None:
        """``last_file``: ``file`` is the live file, where a line without a newline is a torn tail."""
        if self._problem:
            return
        if last_file and not line.endswith(b"\n"):
            self._files.add(file)
            self._torn = file
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
        problem = self._out_of_place(record) or self._unlike_anchors(record)
        if problem:
            self._problem = (where, problem)
            return
        if LOST_FROM in record:
            self._losses.append((record[LOST_FROM], record[SEQ] - 1))
        self._repairs += REPAIRED in record
        if REANCHORED in record:
            self._reanchored.append(record[REANCHORED])
        self._last = link_of(record)
        self._count += 1

    def _out_of_place(self, record: dict[str, Any]) -> str | None:
        """Why an authentic record cannot follow the one before it, if it cannot."""
        expected = self._last.seq + 1 if self._last else 1
        found = f"record {record[SEQ]}"
        if LOST_FROM in record:  # an acknowledged loss follows the last record kept, whatever its prev
            if record[LOST_FROM] == expected and record[SEQ] > expected:
                return None
            found += f" (the acknowledged loss of records {record[LOST_FROM]}-{record[SEQ] - 1})"
        elif record[SEQ] == expected and record[PREV] == (self._last.mac if self._last else GENESIS):
            return None
        return f"expected record {expected}, found {found}: records were deleted, inserted or reordered here"

    def _unlike_anchors(self, record: dict[str, Any]) -> str | None:
        for anchor, name in ((self._checkpoint, "the checkpoint"), (self._mark, "the vault's high-water mark")):
            if anchor and record[SEQ] == anchor.seq and record[MAC] != anchor.mac:
                return f"record {record[SEQ]} is not the one {name} recorded"
        return None

    def finish(self) -> VerifyReport:
        found = self._problem or end_problem(
            self._last.seq if self._last else 0, self._checkpoint, self._mark, self._checkpoint_file
        )
        return VerifyReport(
            self._count,
            len(self._files),
            found[1] if found else None,
            found[0] if found else None,
            tuple(self._losses),
            self._repairs,
            tuple(self._reanchored),
            self._torn,
        )


def end_problem(
    last_seq: int, checkpoint: Link | None, mark: Link | None, checkpoint_file: str
) -> tuple[str, str] | None:
    """(where, what) if the log's end, its checkpoint and the vault's mark disagree.

    The order of trust: the vault's mark (sealed, monotonic, not in the log's folder's files)
    bounds the checkpoint from below, and both bound the log's end from below."""
    checkpoint_seq = checkpoint.seq if checkpoint else 0
    mark_seq = mark.seq if mark else 0
    ends = f"ends at record {last_seq}" if last_seq else "has no records"
    if mark_seq > last_seq and mark_seq >= checkpoint_seq:
        return (
            "end of log",
            f"the vault says at least {mark_seq} records existed, but the log {ends}: records "
            f"{last_seq + 1}-{mark_seq} were removed from the end, or the log was replaced by an older copy",
        )
    if checkpoint_seq > last_seq:
        return (
            "end of log",
            f"the log ends at record {last_seq} but the checkpoint records {checkpoint_seq}: "
            f"records {last_seq + 1}-{checkpoint_seq} were removed from the end",
        )
    if checkpoint is None and last_seq:
        return (
            checkpoint_file,
            f"the checkpoint is missing although the log {ends}: the file was deleted, emptied or replaced",
        )
    if checkpoint_seq < mark_seq:
        return (
            checkpoint_file,
            f"the checkpoint records {checkpoint_seq} but the vault's high-water mark records {mark_seq}: "
            "the file was rolled back to an older copy",
        )
    return None
