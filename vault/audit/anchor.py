"""What anchors the audit log to the vault: its MAC key, a checkpoint of its end, and a
high-water mark that whoever edits the log cannot roll back with it.

The key is 32 random bytes, so reading the log file, or the vault file without its key, is not
enough to forge a record.

The checkpoint (sequence number and MAC of the last record, sealed with the vault key, context
``audit:head``) is written on every append, under the append lock, into the lock file itself
(``audit.jsonl.lock``): one ``pwrite`` on the file the append has just locked, where a commit
to the vault cost a SQLite write transaction per proxied request and made every other process
on the vault see a change. It alternates between two fixed slots (record N goes to slot N % 2),
so a write torn by a power loss leaves the other slot, one record behind, which the next append
and ``verify`` accept (the log may run ahead of its checkpoint, never behind it).

The checkpoint lives beside the log, with the same owner: whoever cuts the log can delete,
empty or roll back the lock file too. So the vault also keeps a high-water mark, "at least N
records existed, and record N had this MAC", sealed *together with the key* (context
``audit:anchor``), as the entries of the store's append-only stream ``audit-anchor``: removing
the mark removes the key, and then nothing verifies. The mark only moves up (an append that is a
compare-and-set on the stream's tail) and only now and then (see ``AuditLog``), never once per
record. ``verify`` holds the log and the checkpoint to it; an append refuses to continue a chain
that ends below it.

Vaults from before kept the key alone (context ``audit:key``; since format 3 in the record
``(audit, legacy)``, field ``key``): it is moved into the stream (mark 0) the first time the
vault is opened, and ``key`` cleared. Older still, the checkpoint lived in the vault (field
``head`` of that record): it is read while the lock file has none, and cleared once the first
checkpoint is in the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import VaultCorrupted
from ..store import Vault
from .chain import GENESIS, Link

KEY_CONTEXT = "audit:key"  # the key sealed alone, before the mark existed
HEAD_CONTEXT = "audit:head"
ANCHOR_CONTEXT = "audit:anchor"
SLOT_BYTES = 256  # 2-byte length, the sealed checkpoint (about 120 bytes), zero padding
STREAM = "audit-anchor"  # entries: the sealed key and mark (context audit:anchor)
LEGACY = ("audit", "legacy")  # record of older vaults: {"key": sealed key or None, "head": sealed checkpoint or None}
_REMOVED = (
    "the audit log's key and high-water mark are missing from the vault (stream audit-anchor): "
    "the audit log can no longer be verified; restore vault.db from a backup"
)


class VaultAnchor:
    """The audit key, checkpoint and high-water mark of one vault; the key is created on first use.

    ``checkpoint_path`` is the log's lock file. The methods that take ``fd`` are called with
    the lock held on it (by :meth:`AuditLog.append`); without one they open the file.
    """

    def __init__(self, vault: Vault, checkpoint_path: Path) -> None:
        self._vault = vault
        self.checkpoint_path = checkpoint_path
        anchor, legacy_head = self._row()
        self.key = self._open_anchor(anchor)[0]
        self._legacy_head = legacy_head

    def head(self, fd: int | None = None) -> Link | None:
        """The last record the log is known to hold, or None before the first append."""
        sealed = _sealed_slots(os.pread(fd, 2 * SLOT_BYTES, 0) if fd is not None else self._read_slots())
        links = [link for link in map(self._open_slot, sealed.values()) if link is not None]
        if links:
            return max(links, key=lambda link: link.seq)
        if sealed:
            raise VaultCorrupted(f"the audit log checkpoint in {self.checkpoint_path} is damaged")
        return self._open(self._legacy_head) if self._legacy_head is not None else None

    def reaches(self, link: Link, fd: int) -> bool:
        """Whether the checkpoint is at ``link`` (the same record) or past it, unsealing only the
        slots it takes: the check before each request, which need not know the checkpoint's end.

        Record ``link.seq + 1``'s slot is opened first: once a later record exists, that slot
        holds one past ``link`` (the newest record or the one before), so one unseal answers.
        False for no checkpoint, or one only the vault kept (earlier versions): the caller then
        finds the chain's end under the lock."""
        sealed = _sealed_slots(os.pread(fd, 2 * SLOT_BYTES, 0))
        for index in ((link.seq + 1) % 2, link.seq % 2):
            found = self._open_slot(sealed[index]) if index in sealed else None
            if found is not None and (found.seq > link.seq or found == link):
                return True
        return False

    def advance(self, link: Link, fd: int | None = None) -> None:
        """Write the checkpoint (not the vault's mark: see :meth:`raise_mark`)."""
        blob = self._vault.seal(checkpoint_text(link), HEAD_CONTEXT)
        slot = (len(blob).to_bytes(2, "big") + blob).ljust(SLOT_BYTES, b"\0")
        if fd is None:
            fd = own = os.open(self.checkpoint_path, os.O_RDWR | os.O_CREAT, 0o600)
        else:
            own = None
        try:
            if os.pwrite(fd, slot, (link.seq % 2) * SLOT_BYTES) != SLOT_BYTES:
                raise OSError("short write of the audit log checkpoint")
        finally:
            if own is not None:
                os.close(own)
        if self._legacy_head is not None:  # the vault's copy would only go stale from now on
            with self._vault.store.atomic() as batch:
                legacy = batch.get(*LEGACY)
                if legacy is not None:
                    batch.put(*LEGACY, {**legacy.fields, "head": None}, quiet=True)
            self._legacy_head = None

    def mark(self) -> Link | None:
        """The vault's high-water mark now (another process may have raised it), None if no record yet."""
        with self._vault.store.read() as batch:
            tail = batch.tail(STREAM)
        return self._open_anchor(tail[1] if tail else None)[1]

    def raise_mark(self, link: Link) -> Link:
        """Raise the mark to ``link`` unless it is already there or higher; return the mark after.

        Only for a record that is durable (see ``AuditLog``): a mark ahead of the log after a
        power loss would read as tampering."""
        with self._vault.store.atomic() as batch:
            tail = batch.tail(STREAM)
            if tail is None:
                raise VaultCorrupted(_REMOVED)
            current = self._open_anchor(tail[1])[1]
            if current is not None and current.seq >= link.seq:
                return current
            batch.append(STREAM, self._seal_anchor(self.key, link), expect=tail[0])
        return link

    def _open(self, blob: bytes) -> Link:
        plain = self._vault.unseal(blob, HEAD_CONTEXT, "the audit log checkpoint")
        try:
            data = json.loads(plain)
            return Link(int(data["seq"]), str(data["mac"]))
        except (ValueError, KeyError, TypeError):
            raise VaultCorrupted("the audit log checkpoint is damaged") from None

    def _open_slot(self, blob: bytes) -> Link | None:
        """A slot's checkpoint; None if it is damaged (torn by a power loss, or being rewritten)."""
        try:
            return self._open(blob)
        except VaultCorrupted:
            return None

    def _open_anchor(self, blob: bytes | None) -> tuple[bytes, Link | None]:
        if blob is None:
            raise VaultCorrupted(_REMOVED)
        plain = self._vault.unseal(blob, ANCHOR_CONTEXT, "the audit log key and high-water mark")
        try:
            data = json.loads(plain)
            key, seq, mac = bytes.fromhex(data["key"]), int(data["seq"]), str(data["mac"])
        except (ValueError, KeyError, TypeError):
            raise VaultCorrupted("the audit log key and high-water mark in the vault are damaged") from None
        return key, Link(seq, mac) if seq else None

    def _seal_anchor(self, key: bytes, mark: Link | None) -> bytes:
        seq, mac = (mark.seq, mark.mac) if mark else (0, GENESIS)
        return self._vault.seal(json.dumps({"key": key.hex(), "seq": seq, "mac": mac}).encode(), ANCHOR_CONTEXT)

    def _read_slots(self) -> bytes:
        try:
            with self.checkpoint_path.open("rb") as handle:
                return handle.read(2 * SLOT_BYTES)
        except FileNotFoundError:
            return b""

    def _row(self) -> tuple[bytes | None, bytes | None]:
        """(sealed anchor, legacy sealed checkpoint); creates the anchor, or moves an older vault's
        key into it, on first use."""
        with self._vault.store.read() as batch:
            tail, legacy = batch.tail(STREAM), batch.get(*LEGACY)
        head = _blob(legacy.fields.get("head")) if legacy is not None else None
        if tail is not None:
            return tail[1], head
        with self._vault.store.atomic() as batch:
            tail, legacy = batch.tail(STREAM), batch.get(*LEGACY)
            if tail is not None:  # another process was first
                return tail[1], head
            key = _blob(legacy.fields.get("key")) if legacy is not None else None
            if legacy is None and self._read_slots().strip(b"\0"):
                return None, None  # a checkpoint sealed with a key that was there: the anchor was removed
            if legacy is not None and not key:
                return None, head  # neither the key nor the mark: removed
            plain = self._vault.unseal(key, KEY_CONTEXT, "the audit log key") if key else os.urandom(32)
            anchor = self._seal_anchor(plain, None)
            batch.append(STREAM, anchor, expect=0)
            if legacy is not None:  # the key alone, as earlier versions kept it: moved in
                batch.put(*LEGACY, {**legacy.fields, "key": None}, quiet=True)
            return anchor, head


def checkpoint_text(link: Link) -> bytes:
    """``json.dumps({"seq": ..., "mac": ...})`` written out: this runs once per proxied request,
    and a MAC is hex, so nothing in it needs escaping."""
    if not (link.mac.isascii() and link.mac.isalnum()):
        return json.dumps({"seq": link.seq, "mac": link.mac}).encode()
    return b'{"seq": %d, "mac": "%s"}' % (link.seq, link.mac.encode())


def _blob(value: object) -> bytes | None:
    if value is not None and not isinstance(value, bytes):
        raise VaultCorrupted("the audit log's key record in the vault is damaged; restore vault.db from a backup")
    return value


def _sealed_slots(data: bytes) -> dict[int, bytes]:
    """The sealed checkpoint in each slot that holds one, by slot number (record N is in slot N % 2)."""
    sealed: dict[int, bytes] = {}
    for index in range(2):
        slot = data[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]
        if slot.strip(b"\0"):
            sealed[index] = slot[2 : 2 + int.from_bytes(slot[:2], "big")]
    return sealed
