"""What the audit log keeps in the vault: its MAC key and its checkpoint.

The key is 32 random bytes sealed with the vault key (context ``audit:key``), so reading
the log file, or the vault file without its key, is not enough to forge a record. The
checkpoint (sequence number and MAC of the last record) is sealed too (``audit:head``):
someone who cuts records off the end of the log cannot write a matching checkpoint.
It is updated on every append, one small autocommit write.
"""

from __future__ import annotations

import json
import os
import sqlite3

from .audit_chain import Link
from .errors import VaultCorrupted
from .store import Vault

KEY_CONTEXT = "audit:key"
HEAD_CONTEXT = "audit:head"
_TABLE = """CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL,
    head BLOB
)"""


class VaultAnchor:
    """The audit key and checkpoint of one vault; the key is created on first use."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self.key = vault.unseal(self._key_blob(), KEY_CONTEXT, "the audit log key")

    def head(self) -> Link | None:
        """The last record the log is known to hold, or None before the first append."""
        rows = self._vault.query("SELECT head FROM audit_anchor WHERE id = 1")
        if not rows or rows[0][0] is None:
            return None
        plain = self._vault.unseal(rows[0][0], HEAD_CONTEXT, "the audit log checkpoint")
        try:
            data = json.loads(plain)
            return Link(int(data["seq"]), str(data["mac"]))
        except (ValueError, KeyError, TypeError):
            raise VaultCorrupted("the audit log checkpoint in the vault is damaged") from None

    def advance(self, link: Link) -> None:
        blob = self._vault.seal(json.dumps({"seq": link.seq, "mac": link.mac}).encode(), HEAD_CONTEXT)
        self._vault.query("UPDATE audit_anchor SET head = ? WHERE id = 1", (blob,))

    def _key_blob(self) -> bytes:
        try:
            rows = self._vault.query("SELECT key FROM audit_anchor WHERE id = 1")
        except sqlite3.OperationalError:  # no table yet: this vault has never written a record
            rows = []
        if rows:
            return rows[0][0]
        with self._vault.transaction() as conn:
            conn.execute(_TABLE)
            row = conn.execute("SELECT key FROM audit_anchor WHERE id = 1").fetchone()
            if row is not None:  # another process created it first
                return row[0]
            blob = self._vault.seal(os.urandom(32), KEY_CONTEXT)
            conn.execute("INSERT INTO audit_anchor (id, key, head) VALUES (1, ?, NULL)", (blob,))
            return blob
