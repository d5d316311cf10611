"""Review filters: status parsing, and each filter giving the same records as SQL on the index
and as a predicate on records (what --follow uses)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from clavis_mcp.vault.audit.chain import Link, encode, link_of, seal
from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.filters import AuditFilter, StatusRange, parse_status
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.errors import AuditQueryError

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def write_log(path: Path, records: list[dict[str, Any]], previous: Link | None = None) -> Link | None:
    """Append chained records with chosen times (the index trusts the log; verify is elsewhere)."""
    with path.open("ab") as handle:
        for record in records:
            sealed = seal(b"k" * 32, previous, record)
            handle.write(encode(sealed))
            previous = link_of(sealed)
    return previous


def rec(id: str, minutes: int, **fields: Any) -> dict[str, Any]:
    return {"id": id, "time": (T0 + timedelta(minutes=minutes)).isoformat(timespec="milliseconds"), **fields}


RECORDS = [
    rec("a", 0, source="mcp", service="openai", host="api.openai.com", status=200, decision="injected"),
    rec("b", 10, source="ci-bot", service="openai", host="api.openai.com", status=429, decision="injected"),
    rec("c", 20, source="ci-bot", service="github", host="api.github.com", status=404, decision="injected"),
    rec("d", 30, source="ci-bot", host="evil.test", status=403, decision="refused", reason="no service"),
    rec("e", 40, source="mcp", service="github", action="reveal", decision="revealed"),
    rec("f", 50, source="cli", service="stripe", action="add", decision="added"),
    rec("g", 60, source="ci-bot", service="github", host="api.github.com", status=502, decision="error"),
]

FILTERS = [
    ("everything", AuditFilter(), "abcdefg"),
    ("service", AuditFilter(service="github"), "ceg"),
    ("agent", AuditFilter(agent="ci-bot"), "bcdg"),
    ("decision", AuditFilter(decision="refused"), "d"),
    ("status code", AuditFilter(status=StatusRange(404, 405)), "c"),
    ("status class", AuditFilter(status=StatusRange(400, 500)), "bcd"),
    ("host", AuditFilter(host="API.GitHub.com."), "cg"),
    ("since inclusive", AuditFilter(since=T0 + timedelta(minutes=40)), "efg"),
    ("until exclusive", AuditFilter(until=T0 + timedelta(minutes=20)), "ab"),
    ("window", AuditFilter(since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=45)), "bcde"),
    ("since in another zone", AuditFilter(since=datetime(2026, 11, 24, 14, 30, tzinfo=PLUS_TWO)), "defg"),
    ("service and time", AuditFilter(service="openai", since=T0 + timedelta(minutes=1)), "b"),
    ("agent and status", AuditFilter(agent="ci-bot", status=StatusRange(500, 600)), "g"),
    ("nothing", AuditFilter(service="nope"), ""),
]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[AuditIndex]:
    write_log(tmp_path / "audit.jsonl", RECORDS)
    built = AuditIndex(LogFiles(tmp_path / "audit.jsonl"))
    built.refresh()
    yield built
    built.close()


@pytest.mark.parametrize(("where", "expected"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_a_filter_selects_the_same_records_from_the_index_and_live(
    index: AuditIndex, where: AuditFilter, expected: str
) -> None:
    from_index = "".join(r["id"] for r in index.read(index.select(where, None)))
    live = "".join(r["id"] for r in RECORDS if where.matches(r))
    assert from_index == live == expected
    assert index.count(where) == len(expected)


STATUSES = [("200", StatusRange(200, 201)), ("4xx", StatusRange(400, 500)), (" 5XX ", StatusRange(500, 600))]


@pytest.mark.parametrize(("text", "parsed"), STATUSES, ids=[s[0].strip() for s in STATUSES])
def test_status_is_a_code_or_a_class(text: str, parsed: StatusRange) -> None:
    assert parse_status(text) == parsed


@pytest.mark.parametrize("text", ["", "ok", "4x", "600", "99", "4xxx", "2000"])
def test_unreadable_status_is_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(AuditQueryError, match="404.*4xx"):
        parse_status(text)
