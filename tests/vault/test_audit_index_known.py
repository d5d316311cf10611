"""The index keeper takes the fields of the lines its own log appended instead of parsing them
again (issue 18: a JSON parse per record, on the proxy's CPU); every other line is parsed, and
the index comes out the same either way."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit import index as index_module
from clavis_mcp.vault.audit.index import AuditIndex


def rows(index: AuditIndex) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(index.path)) as conn:
        indexed = conn.execute(
            "SELECT t, source, service, decision, status, host, file, offset FROM records ORDER BY pos"
        )
        return indexed.fetchall() + conn.execute("SELECT * FROM latest ORDER BY service, decision").fetchall()


def append(log: AuditLog, service: str) -> None:
    log.append(source="mcp", service=service, method="GET", host="api.example", status=200, decision="injected")


def test_lines_this_log_appended_are_not_parsed_again_and_others_are(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = AuditLog.for_vault(vault, max_bytes=900)  # rotates: positions span files
    other = AuditLog.for_vault(vault, max_bytes=900)  # another process on the same log
    other._index.close()
    parsed: list[bytes] = []
    parse = index_module._row

    def counted(line: bytes, *at: int) -> tuple[object, ...] | None:
        if b'"host":"api.example"' in line:  # this test's lines: keeper threads of other tests' logs parse too
            parsed.append(line)
        return parse(line, *at)

    monkeypatch.setattr(index_module, "_row", counted)
    try:
        for service in ("a", "b", "c", "d"):
            append(ours, service)
        append(other, "e")
        append(ours, "f")
        assert len(ours.files.rotated()) >= 2
        ours._index._catch_up()  # what the keeper's thread does a moment after appends
        assert [line for line in parsed if b'"service":"e"' not in line] == []
        assert len(parsed) == 1
    finally:
        ours.close()
        other.close()
    kept = AuditIndex(ours.files)
    kept_rows = rows(kept)
    kept.close()
    kept.path.unlink()  # indexed afresh, every line parsed: the same rows
    fresh = AuditIndex(ours.files)
    try:
        fresh.refresh()
        assert rows(fresh) == kept_rows and len(kept_rows) == 6 + 6
    finally:
        fresh.close()
