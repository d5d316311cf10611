"""What anchors the audit log to the vault: its MAC key, and a sealed checkpoint of its end.

The key is 32 random bytes sealed with the vault key (context ``audit:key``) in the vault's
``audit_anchor`` table, so reading the log file, or the vault file without its key, is not
enough to forge a record. The checkpoint (sequence number and MAC of the last record) is
sealed too (``audit:head``): someone who cuts records off the end of the log cannot write a
matching checkpoint.

The checkpoint is written on every append, under the append lock, into the lock file itself
(``audit.jsonl.lock``): one ``pwrite`` on the file the append has just locked, where a commit
to the vault cost a SQLite write transaction per proxied request and made every other process
on the vault see a change. It alternates between two fixed slots (record N goes to slot N % 2),
so a write torn by a power loss leaves the other slot, one record behind, which the next append
and ``verify`` accept (the log may run ahead of its checkpoint, never behind it). Vaults from
before kept the checkpoint in ``audit_anchor.head``: it is read while the lock file has none,
and cleared once the first checkpoint is in the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from .audit_chain import Link
from .errors import VaultCorrupted
from .store import Vault

KEY_CONTEXT = "audit:key"
HEAD_CONTEXT = "audit:head"
SLOT_BYTES = 256  # 2-byte length, the sealed checkpoint (about 120 bytes), zero padding
_TABLE = """CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL,
    head BLOB
)"""


class VaultAnchor:
    """The audit key and checkpoint of one vault; the key is created on first use.

    ``checkpoint_path`` is the log's lock file. The methods that take ``fd`` are called with
    the lock held on it (by :meth:`AuditLog.append`); without one they open the file.
    """

    def __init__(self, vault: Vault, checkpoint_path: Path) -> None:
        self._vault = vault
        self.checkpoint_path = checkpoint_path
        key_blob, legacy_head = self._row()
        self.key = vault.unseal(key_blob, KEY_CONTEXT, "the audit log key")
        self._legacy_head = legacy_head

    def head(self, fd: int | None = None) -> Link | None:
        """The last record the log is known to hold, or None before the first append."""
        slots = os.pread(fd, 2 * SLOT_BYTES, 0) if fd is not None else self._read_slots()
        links, damaged = [], False
        for index in range(2):
            slot = slots[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]
            if not slot.strip(b"\0"):
                continue
            try:
                links.append(self._open(slot[2 : 2 + int.from_bytes(slot[:2], "big")]))
            except VaultCorrupted:
                damaged = True
        if links:
            return max(links, key=lambda link: link.seq)
        if damaged:
            raise VaultCorrupted(f"the audit log checkpoint in {self.checkpoint_path} is damaged")
        return self._open(self._legacy_head) if self._legacy_head is not None else None

    def advance(self, link: Link, fd: int | None = None) -> None:
        blob = self._vault.seal(json.dumps({"seq": link.seq, "mac": link.mac}).encode(), HEAD_CONTEXT)
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
            self._vault.query("UPDATE audit_anchor SET head = NULL WHERE id = 1")
            self._legacy_head = None

    def _open(self, blob: bytes) -> Link:
        plain = self._vault.unseal(blob, HEAD_CONTEXT, "the audit log checkpoint")
        try:
            data = json.loads(plain)
            return Link(int(data["seq"]), str(data["mac"]))
        except (ValueError, KeyError, TypeError):
            raise VaultCorrupted("the audit log checkpoint is damaged") from None

    def _read_slots(self) -> bytes:
        try:
            with self.checkpoint_path.open("rb") as handle:
                return handle.read(2 * SLOT_BYTES)
        except FileNotFoundError:
            return b""

    def _row(self) -> tuple[bytes, bytes | None]:
        try:
            rows = self._vault.query("SELECT key, head FROM audit_anchor WHERE id = 1")
        except sqlite3.OperationalError:  # no table yet: this vault has never written a record
            rows = []
        if rows:
            return rows[0][0], rows[0][1]
        with self._vault.transaction() as conn:
            conn.execute(_TABLE)
            row = conn.execute("SELECT key, head FROM audit_anchor WHERE id = 1").fetchone()
            if row is not None:  # another process created it first
                return row[0], row[1]
            blob = self._vault.seal(os.urandom(32), KEY_CONTEXT)
            conn.execute("INSERT INTO audit_anchor (id, key, head) VALUES (1, ?, NULL)", (blob,))
            return blob, None
