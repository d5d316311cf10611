"""The team audit log in PostgreSQL: one HMAC chain per replica process, signed checkpoints.

A single chain across replicas would serialise every request on one row lock; instead each
process writes its own chain (``chain`` = a random id per process, ``seq`` from 1), each record
MAC'd with the previous record's MAC under a key kept in OpenBao, so a database editor cannot
forge a record. Every few seconds a replica signs, with an OpenBao transit key, the Merkle root of
every chain's head: a chain cut or rewritten below a signed head is detected, and so is an
edited row anywhere. The tables refuse UPDATE, DELETE and TRUNCATE by trigger.

The object offers what the proxy's ``AuditTrail`` addon calls (``append``, ``check_writable``),
so the addon runs unchanged; a write that fails raises AuditWriteError and the request fails
closed, as in the local log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clavis_mcp.vault.audit.log import FIELDS, PATH, path_without_query_values
from clavis_mcp.vault.errors import AuditWriteError

from .bao import Bao
from .config import Names

_GIVEN = frozenset(FIELDS) - {"id", "time"}
_SCALARS = (str, int, float, bool)
GENESIS = "0" * 64


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def mac_of(key: bytes, previous: str, record_text: str) -> str:
    return hmac.new(key, previous.encode() + b"\n" + record_text.encode(), hashlib.sha256).hexdigest()


def merkle_root(heads: dict[str, list[Any]]) -> str:
    """Root over ``chain -> [seq, mac]``, leaves in chain order; a lone leaf is carried up."""
    level = [hashlib.sha256(f"{c}:{s}:{m}".encode()).digest() for c, (s, m) in sorted(heads.items())]
    if not level:
        return hashlib.sha256(b"empty").hexdigest()
    while len(level) > 1:
        level = [hashlib.sha256(b"".join(level[i : i + 2])).digest() for i in range(0, len(level), 2)]
    return level[0].hex()


def audit_key(bao: Bao, names: Names) -> bytes:
    found = bao.kv_read(names.kv, names.audit_key_path)
    if found is None:
        raise AuditWriteError("the audit chain key is missing from OpenBao; run the bootstrap again")
    return bytes.fromhex(found[0]["hmac_key"])


class TeamAuditLog:
    def __init__(self, conn: psycopg.Connection[Any], bao: Bao, names: Names) -> None:
        self._conn, self._bao, self._names = conn, bao, names
        self._key = audit_key(bao, names)
        self.chain = os.urandom(8).hex()
        self._seq = 0
        self._previous = GENESIS
        self._lock = threading.Lock()
        self._checkpointed = 0

    def use(self, conn: psycopg.Connection[Any]) -> None:
        """Go on with a new connection (the replica replaced a broken one)."""
        self._conn = conn

    def append(self, **fields: Any) -> str:
        """Write one record; return its id. Raises AuditWriteError if it could not be written."""
        if not _GIVEN.issuperset(fields):
            raise ValueError(f"unknown audit fields: {sorted(set(fields) - _GIVEN)}")
        record: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        for name, value in record.items():
            if not isinstance(value, _SCALARS):
                raise ValueError(f"audit field {name!r} must be a plain value, not {type(value).__name__}")
        if PATH in record:
            record[PATH] = path_without_query_values(record[PATH])
        with self._lock:
            now = datetime.now(UTC)
            record["id"] = record_id = os.urandom(8).hex()
            record["time"] = now.isoformat(timespec="milliseconds")
            record["chain"], record["seq"] = self.chain, self._seq + 1
            text = canonical(record).decode()
            mac = mac_of(self._key, self._previous, text)
            try:
                self._conn.execute(
                    "INSERT INTO audit (id, chain, seq, time, record, mac) VALUES (%s, %s, %s, %s, %s, %s)",
                    (record_id, self.chain, self._seq + 1, now, text, mac),
                )
            except psycopg.Error as exc:
                raise AuditWriteError(
                    f"the team audit log could not be written ({type(exc).__name__}); the request is refused"
                ) from None
            self._seq += 1
            self._previous = mac
        return record_id

    def check_writable(self) -> None:
        if self._conn.closed or self._conn.broken:
            raise AuditWriteError("the team audit log's database connection is down; the request is refused")

    def checkpoint(self) -> bool:
        """Sign the heads of every chain if anything was written since the last checkpoint."""
        total = self._conn.execute("SELECT count(*) FROM audit").fetchone()
        count = int(total[0]) if total else 0
        if count == self._checkpointed:
            return False
        heads = heads_of(self._conn)
        root = merkle_root(heads)
        version, signature = self._bao.sign(self._names.transit, "audit", root.encode())
        self._conn.execute(
            "INSERT INTO audit_checkpoints (heads, root, key_version, signature) VALUES (%s, %s, %s, %s)",
            (json.dumps(heads), root, version, base64.b64encode(signature).decode()),
        )
        self._checkpointed = count
        return True


def heads_of(conn: psycopg.Connection[Any]) -> dict[str, list[Any]]:
    rows = conn.execute("SELECT DISTINCT ON (chain) chain, seq, mac FROM audit ORDER BY chain, seq DESC").fetchall()
    return {chain: [int(seq), mac] for chain, seq, mac in rows}


def query(conn: psycopg.Connection[Any], filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Records newest first; ``filters`` holds service, agent (source), decision, since, until."""
    where, params = [], []
    for field, column in (("service", "service"), ("agent", "source"), ("decision", "decision")):
        if filters.get(field):
            where.append(f"record::jsonb->>'{column}' = %s")
            params.append(filters[field])
    if filters.get("since"):
        where.append("time >= %s")
        params.append(filters["since"])
    if filters.get("until"):
        where.append("time < %s")
        params.append(filters["until"])
    sql = "SELECT record FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
    rows = conn.execute(sql + " ORDER BY time DESC, seq DESC LIMIT %s", (*params, limit)).fetchall()
    return [json.loads(row[0]) for row in rows]


def verify(conn: psycopg.Connection[Any], bao: Bao, names: Names) -> dict[str, Any]:
    """Every chain recomputed from its first record; every checkpoint's signature and heads checked."""
    key = audit_key(bao, names)
    problems: list[str] = []
    chains: dict[str, tuple[int, str]] = {}
    records = 0
    for record_id, chain, seq, text, mac in conn.execute(
        "SELECT id, chain, seq, record, mac FROM audit ORDER BY chain, seq"
    ):
        records += 1
        last_seq, previous = chains.get(chain, (0, GENESIS))
        if seq != last_seq + 1:
            problems.append(f"chain {chain}: records {last_seq + 1}-{seq - 1} are missing")
        try:
            data = json.loads(text)
            consistent = data.get("id") == record_id and data.get("chain") == chain and data.get("seq") == seq
        except ValueError:
            consistent = False
        if not consistent or not hmac.compare_digest(mac_of(key, previous, text), mac):
            problems.append(f"chain {chain}: record {seq} ({record_id}) was edited or forged")
        chains[chain] = (seq, mac)
    public = {v: Ed25519PublicKey.from_public_bytes(k) for v, k in bao.public_keys(names.transit, "audit").items()}
    for cp_id, heads, root, version, signature in conn.execute(
        "SELECT id, heads, root, key_version, signature FROM audit_checkpoints ORDER BY id"
    ):
        try:
            public[version].verify(base64.b64decode(signature), root.encode())
            signed = merkle_root(heads) == root
        except (KeyError, InvalidSignature, ValueError):
            signed = False
        if not signed:
            problems.append(f"checkpoint {cp_id}: its signature or its heads do not match")
            continue
        for chain, (seq, mac) in heads.items():
            have = conn.execute("SELECT mac FROM audit WHERE chain = %s AND seq = %s", (chain, seq)).fetchone()
            if have is None:
                problems.append(f"chain {chain}: cut below record {seq}, which checkpoint {cp_id} signed")
            elif have[0] != mac:
                problems.append(f"chain {chain}: record {seq} differs from what checkpoint {cp_id} signed (forked)")
    return {
        "ok": not problems,
        "chains": len(chains),
        "records": records,
        "problems": problems,
        "checked_at": time.time(),
    }
