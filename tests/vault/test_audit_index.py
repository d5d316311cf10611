"""The review index keeps up with the log: appends, rotation, a replaced or cut log, torn lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.errors import AuditIndexStale
from tests.vault.test_audit_filter import rec, write_log

EVERYTHING = AuditFilter()


def ids(index: AuditIndex, limit: int | None = None) -> str:
    index.refresh()
    return "".join(r["id"] for r in index.read(index.select(EVERYTHING, limit)))


def test_records_appended_since_the_last_review_are_picked_up(index: AuditIndex, log_path: Path) -> None:
    last = write_log(log_path, [rec("a", 0), rec("b", 1)])
    assert ids(index) == "ab"
    write_log(log_path, [rec("c", 2)], last)
    assert ids(index) == "abc"
    assert ids(index, limit=2) == "bc"  # the newest, oldest first


def test_a_torn_last_line_waits_until_it_is_complete(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, [rec("a", 0)])
    line_b = log_path.read_bytes()
    write_log(log_path, [rec("b", 1)])
    whole = log_path.read_bytes()
    log_path.write_bytes(whole[: len(line_b) + 20])
    assert ids(index) == "a"
    log_path.write_bytes(whole)
    assert ids(index) == "ab"


def test_positions_stay_valid_across_rotation(vault: Vault, home: Path) -> None:
    audit = AuditLog.for_vault(vault, max_bytes=700)
    index = AuditIndex(audit.files)
    try:
        first = [audit.append(source="mcp", service="a") for _ in range(3)]
        index.refresh()
        later = [audit.append(source="mcp", service="a") for _ in range(9)]
        assert len(audit.files.rotated()) >= 2
        index.refresh()
        assert [r["id"] for r in index.read(index.select(EVERYTHING, None))] == first + later
    finally:
        index.close()


def test_a_replaced_log_is_indexed_afresh(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, [rec("a", 0), rec("b", 1), rec("c", 2)])
    assert ids(index) == "abc"
    log_path.unlink()
    write_log(log_path, [rec("x", 5), rec("y", 6), rec("z", 7), rec("w", 8)])
    assert ids(index) == "xyzw"


def test_a_removed_rotated_file_drops_out_of_the_index(index: AuditIndex, log_path: Path) -> None:
    last = write_log(log_path.with_name("audit.jsonl.1"), [rec("a", 0), rec("b", 1)])
    last = write_log(log_path.with_name("audit.jsonl.2"), [rec("c", 2)], last)
    write_log(log_path, [rec("d", 3)], last)
    assert ids(index) == "abcd"
    log_path.with_name("audit.jsonl.1").unlink()
    assert ids(index) == "cd"


def test_an_empty_or_missing_log_has_no_records(index: AuditIndex, log_path: Path) -> None:
    assert ids(index) == ""
    log_path.touch()
    assert ids(index) == ""
    assert index.stats(EVERYTHING)["service"] == []


def test_stats_count_per_dimension(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, [
        rec("a", 0, source="mcp", service="s1", status=200, decision="injected"),
        rec("b", 1, source="bot", service="s1", status=200, decision="injected"),
        rec("c", 2, source="bot", service="s2", status=403, decision="refused"),
        rec("d", 3, source="cli", service="s2", decision="added"),
    ])  # fmt: skip
    index.refresh()
    counts = index.stats(EVERYTHING)
    assert counts["service"] == [("s1", 2), ("s2", 2)]
    assert counts["source"] == [("bot", 2), ("cli", 1), ("mcp", 1)]
    assert counts["status"] == [(200, 2), (None, 1), (403, 1)]
    assert counts["decision"] == [("injected", 2), ("added", 1), ("refused", 1)]
    assert index.stats(AuditFilter(agent="bot"))["service"] == [("s1", 1), ("s2", 1)]


def test_the_index_file_is_private(index: AuditIndex) -> None:
    assert index.path.stat().st_mode & 0o777 == 0o600


def test_a_record_edited_under_the_index_gives_a_clear_error(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, [rec("a", 0), rec("b", 1), rec("c", 2)])
    assert ids(index) == "abc"
    lines = log_path.read_bytes().splitlines(keepends=True)
    log_path.write_bytes(lines[0] + b"}" + lines[1][1:] + lines[2])
    with pytest.raises(AuditIndexStale, match="audit verify"):
        ids(index)
