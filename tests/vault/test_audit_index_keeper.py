"""The review index is kept current as records are appended (issue 18.4): a review's first query
finds the log already indexed instead of indexing all of it. The waits below poll with a deadline;
nothing here asserts a duration."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit import index as index_module
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import INDEX_SUFFIX, AuditIndex, IndexKeeper

DEADLINE = 30.0


def wait_for(condition: Callable[[], bool]) -> bool:
    ends = time.monotonic() + DEADLINE
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def indexed(log: AuditLog) -> int:
    """Records in the sidecar, read with plain SQLite: no review, so no catch-up, runs."""
    path = log.files.live.with_name(log.files.live.name + INDEX_SUFFIX)
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        except sqlite3.OperationalError:  # the keeper has not made its tables yet
            return 0


def append(log: AuditLog, service: str) -> None:
    log.append(source="mcp", service=service, method="GET", scheme="https", host="api.example", port=443,
               path="/v1/x", status=200, decision="injected")  # fmt: skip


def test_appended_records_are_indexed_without_a_review(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "KEEP_EVERY", 0.05)
    log = AuditLog.for_vault(vault)
    try:
        for service in ("a", "b", "c"):
            append(log, service)
        assert wait_for(lambda: indexed(log) == 3)
        append(log, "d")
        assert wait_for(lambda: indexed(log) == 4)
    finally:
        log.close()


def test_the_keeper_thread_ends_when_appends_stop_and_on_close(vault: Vault, home: Path) -> None:
    log = AuditLog.for_vault(vault)
    try:
        keeper = IndexKeeper(log.files, every=0.05)
        append(log, "a")
        keeper.poke()
        assert wait_for(lambda: keeper._thread is None)  # one catch-up, then a quiet interval: gone
        assert indexed(log) == 1
        keeper.poke()
        keeper.close()
        assert keeper._thread is None
        keeper.poke()  # after close: a flag only, no thread
        assert keeper._thread is None
    finally:
        log.close()


def test_a_limited_catch_up_indexes_in_slices_across_rotation(vault: Vault, home: Path) -> None:
    """A log never indexed is caught up KEEP_LINES at a time by the keeper; each slice resumes
    where the last stopped, across rotated files, and ends with every record once, in order."""
    audit = AuditLog.for_vault(vault, max_bytes=700)
    audit._index.close()  # this test drives the catch-up itself
    written = [audit.append(source="mcp", service="a") for _ in range(11)]
    assert len(audit.files.rotated()) >= 2
    index = AuditIndex(audit.files)
    try:
        slices = 0
        while True:
            index.refresh(limit=3)
            slices += 1
            if not index.behind:
                break
        assert slices >= 4
        assert [r["id"] for r in index.read(index.select(AuditFilter(), None))] == written
    finally:
        index.close()
        audit.close()
