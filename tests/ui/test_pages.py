"""The overview and the records table over HTTP, against the known audit log in a real vault."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.server import running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Vault

from .conftest import BY_DECISION, TOTAL


def segments(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for decision, count in re.findall(r'data-decision="([a-z]+)" data-count="([0-9]+)"', text):
        found[decision] = found.get(decision, 0) + int(count)
    return found


@pytest.mark.parametrize("period", ["hour", "day", "week"])
def test_the_overview_shows_the_known_logs_figures(client: httpx.Client, period: str) -> None:
    text = client.get(f"/?period={period}").text
    assert f'data-total="{TOTAL}"' in text
    assert segments(text) == BY_DECISION
    assert 'data-service="openai" data-agent="mcp" data-count="5" data-bytes="5000" data-errors="0"' in text
    assert 'data-service="openai" data-agent="ci-bot" data-count="3" data-bytes="1000" data-errors="1"' in text
    assert 'data-count="3"><title>method POST not allowed: 3</title>' in text
    assert '<tr data-service="openai"><th>openai</th><td>8</td><td>10</td><td>90</td><td>90</td><td>90</td>' in text
    assert re.search(r'data-service="openai"><th>openai</th><td>123 of 500 requests</td>', text)
    assert 'id="chain" class="badge ok"' in text and f"OK: {TOTAL} records" in text


def test_an_unknown_period_is_a_clear_error(client: httpx.Client) -> None:
    response = client.get("/?period=fortnight")
    assert response.status_code == 400 and "use one of hour, day, week" in response.text


def test_a_broken_chain_shows_a_broken_badge(client: httpx.Client, known_log: AuditLog) -> None:
    assert 'class="badge ok"' in client.get("/").text  # verified once, and kept while the files are unchanged
    lines = known_log.path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"status":200', b'"status":201')
    known_log.path.write_bytes(b"".join(lines))
    text = client.get("/").text
    assert 'id="chain" class="badge broken"' in text and "BROKEN" in text


def ids(text: str) -> list[str]:
    return re.findall(r'<tr class="rec [^"]*" data-id="([0-9a-f]+)"', text)


@pytest.mark.parametrize(
    ("query", "count"),
    [("", 14), ("service=github", 4), ("agent=ci-bot", 8), ("decision=refused", 4), ("method=post", 4),
     ("host=API.GITHUB.COM", 4), ("path=/v1/item/4", 1), ("status=4xx", 4), ("status=502", 1),
     ("since=1h", 14), ("until=1h", 0), ("q=connect+target", 1), ("q=TLS", 1), ("service=openai&agent=mcp", 5)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_records_are_filtered(client: httpx.Client, query: str, count: int) -> None:
    text = client.get(f"/records?{query}").text
    assert len(ids(text)) == count
    assert (f"{count} matching" in text) or count == 0


def test_a_bad_filter_is_a_clear_error(client: httpx.Client) -> None:
    response = client.get("/records?status=abc")
    assert response.status_code == 400 and "use a code such as 404" in response.text
    assert client.get("/records?since=soon").status_code == 400


def test_records_are_paginated_newest_first(client: httpx.Client, known_log: AuditLog) -> None:
    for i in range(60):
        known_log.append(source="pager", service="openai", decision="injected", path=f"/p/{i}")
    first = client.get("/records?agent=pager").text
    second = client.get("/records?agent=pager&page=2").text
    assert len(ids(first)) == 50 and len(ids(second)) == 10
    assert "/p/59" in first and "/p/9<" in second and "/p/10<" in first
    assert 'rel="next" href="/records?agent=pager&amp;page=2"' in first and 'rel="prev"' in second
    narrowed = client.get("/records?agent=pager&q=/p/&page=2").text  # the free-text path pages too
    assert len(ids(narrowed)) == 10


def test_each_record_expands_to_all_its_fields_and_its_place_in_the_chain(
    client: httpx.Client, known_log: AuditLog
) -> None:
    record = list(known_log.records())[-1]
    text = client.get("/records").text
    for name in ("seq", "prev", "mac", "id", "time", "duration_ms", "bytes"):
        assert f"<dt>{name}</dt>" in text
    assert f"<dd>{record['mac']}</dd>" in text and f"<summary>#{record['seq']}</summary>" in text


def test_what_agents_wrote_is_shown_as_text(client: httpx.Client, known_log: AuditLog) -> None:
    known_log.append(source='<img src=x onerror="alert(1)">', path="/<script>alert(1)</script>", decision="refused",
                     reason="<b>bold</b>")  # fmt: skip
    for path in ("/", "/records"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text and "<b>bold" not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in client.get("/records").text


def test_the_live_tail_streams_new_matching_records(client: httpx.Client, known_log: AuditLog) -> None:
    page = client.get("/records?service=github").text
    start = re.search(r'id="tail" data-from="([0-9]+:[0-9]+)"', page)
    assert start is not None
    known_log.append(source="late", service="openai", decision="injected", path="/not-matching")
    wanted = known_log.append(source="late", service="github", decision="refused", path="/after-page", reason="r")
    with client.stream("GET", f"/events?service=github&from={start.group(1)}", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                break
    assert event["record"]["id"] == wanted
    assert event["cells"][1:4] == ["late", "github", "/after-page"]


def test_a_fresh_vault_with_no_records_shows_empty_sections(home: Path, vault: Vault) -> None:
    with (
        running(AuditSource(home, vault)) as served,
        httpx.Client(base_url=served.origin, headers={SESSION_HEADER: served.token}, trust_env=False) as c,
    ):
        overview, records = c.get("/"), c.get("/records")
    assert overview.status_code == 200 and 'data-total="0"' in overview.text
    assert "no requests in this period" in overview.text and "no rate-limit headers seen yet" in overview.text
    assert records.status_code == 200 and "no matching records" in records.text
