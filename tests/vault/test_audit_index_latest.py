"""The review index's ``latest`` table: the newest record of each (service, decision), kept as
records are indexed, answers for many services in one query and agrees with a search of the
records; an index made before the table existed is filled from its records; it is rebuilt with
the records from the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from tests.vault.test_audit_filter import RECORDS, rec, write_log


def newest_ids(index: AuditIndex, services: list[str]) -> dict[tuple[str, str], str]:
    """(service, decision) -> id of the newest such record, from ``latest``, read back from the log."""
    rows = index.latest(services)
    return {(s, d): record["id"] for (s, d, _, position) in rows for record in index.read([position])}


def searched_ids(index: AuditIndex, services: list[str]) -> dict[tuple[str, str], str]:
    """The same, by one search of the records per service and decision."""
    found = {}
    for service in services:
        for decision in {r.get("decision") for r in RECORDS} | {"valid"}:
            record = index.newest(AuditFilter(service=service, decision=decision))
            if record is not None:
                found[service, decision] = record["id"]
    return found


def test_latest_agrees_with_a_search_of_the_records_as_records_are_appended(index: AuditIndex, log_path: Path) -> None:
    services = ["openai", "github", "stripe", "nowhere"]
    last = write_log(log_path, RECORDS[:4])
    index.refresh()
    assert newest_ids(index, services) == searched_ids(index, services)
    write_log(log_path, [*RECORDS[4:], rec("h", 70, service="openai", decision="injected"),
                         rec("i", 80, service="github", action="check", decision="valid")], last)  # fmt: skip
    index.refresh()
    assert newest_ids(index, services) == searched_ids(index, services)
    assert newest_ids(index, ["openai"]) == {("openai", "injected"): "h"}
    assert newest_ids(index, ["github"])["github", "valid"] == "i"


def test_latest_answers_a_thousand_services_in_one_query(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, [rec(f"r{i}", i, service=f"s-{i}", decision="injected") for i in range(1500)])
    index.refresh()
    asked = [f"s-{i}" for i in range(0, 1500, 3)][:1000]
    rows = index.latest(asked)
    assert sorted(service for service, *_ in rows) == sorted(asked)
    assert all(decision == "injected" for _, decision, *_ in rows)


def test_an_index_made_before_latest_existed_is_filled_from_its_records(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, RECORDS)
    index.refresh()
    expected = newest_ids(index, ["openai", "github", "stripe"])
    index.close()
    older = sqlite3.connect(index.path, isolation_level=None)
    older.execute("DELETE FROM latest")
    older.execute("PRAGMA user_version = 0")  # as an index written by a version without the table
    older.close()
    reopened = AuditIndex(LogFiles(log_path))
    try:
        assert newest_ids(reopened, ["openai", "github", "stripe"]) == expected
        assert expected["github", "error"] == "g" and expected["openai", "injected"] == "b"
    finally:
        reopened.close()


def test_latest_is_rebuilt_with_the_records_when_the_log_is_replaced(index: AuditIndex, log_path: Path) -> None:
    write_log(log_path, RECORDS)
    index.refresh()
    log_path.unlink()
    write_log(log_path, [rec("x", 5, service="github", decision="injected")])
    index.refresh()
    assert newest_ids(index, ["openai", "github", "stripe"]) == {("github", "injected"): "x"}
