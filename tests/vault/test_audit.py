from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault import AuditLog, AuditWriteError
from vault.audit import path_without_query_values

PATHS = [
    ("/v1/models", "/v1/models"),
    ("/v1/x?key=sk-123&b=2", "/v1/x?key=&b="),
    ("/search?q=a%20b", "/search?q="),
    ("", "/"),
]


@pytest.mark.parametrize(("path", "recorded"), PATHS, ids=[p[0] or "empty" for p in PATHS])
def test_query_values_never_reach_the_log(path: str, recorded: str) -> None:
    assert path_without_query_values(path) == recorded


def test_append_writes_one_private_json_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    first = log.append(source="mcp", service="svc", path="/a?token=abc", decision="injected")
    second = log.append(source="cli", action="add", service="svc")
    records = list(log.records())
    assert [r["id"] for r in records] == [first, second]
    assert records[0]["path"] == "/a?token="
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    assert "abc" not in (tmp_path / "audit.jsonl").read_text()
    assert all(json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines())


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "audit.jsonl").append(authorization="Bearer x")


def test_unwritable_log_fails_closed_with_a_reason(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "missing-dir" / "audit.jsonl")
    with pytest.raises(AuditWriteError, match="refused"):
        log.append(source="mcp")
    with pytest.raises(AuditWriteError):
        log.check_writable()
