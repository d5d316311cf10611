"""The vault file edited with sqlite3 directly, as an attacker or a damaged disk would: below the
vault and its storage layer, in the format docs/vault-format.md describes (format 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from clavis_mcp.vault.storage.protocol import Value, decode_fields, encode_fields


@contextmanager
def raw(home: Path) -> Iterator[sqlite3.Connection]:
    """A connection of its own to ``home``'s vault.db; what it did is committed at the end."""
    with closing(sqlite3.connect(home / "vault.db", timeout=10.0)) as conn, conn:
        yield conn


def query(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with raw(home) as conn:
        return conn.execute(sql, params).fetchall()


def fields_of(home: Path, kind: str, key: str) -> dict[str, Value] | None:
    rows = query(home, "SELECT fields FROM records WHERE kind = ? AND key = ?", (kind, key))
    return decode_fields(rows[0][0]) if rows else None


def edit_record(home: Path, kind: str, key: str, change: Callable[[dict[str, Value]], None]) -> None:
    """Rewrite one record's fields in place (its version and the change counter stay as they are)."""
    with raw(home) as conn:
        (text,) = conn.execute("SELECT fields FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        fields = decode_fields(text)
        change(fields)
        conn.execute("UPDATE records SET fields = ? WHERE kind = ? AND key = ?", (encode_fields(fields), kind, key))


def put_record(home: Path, kind: str, key: str, fields: dict[str, Value], service: str | None = None) -> None:
    with raw(home) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO records (kind, key, service, fields, version) VALUES (?, ?, ?, ?, 1)",
            (kind, key, service, encode_fields(fields)),
        )
