"""The overview's figures, as pure functions of records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clavis_mcp.ui.charts import bars_svg, timeline_svg
from clavis_mcp.ui.figures import bucket_width, limit_state, overview, percentile

START = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def rec(minutes: float, **fields: object) -> dict[str, object]:
    return {"time": (START + timedelta(minutes=minutes)).isoformat(), **fields}


RECORDS = [
    rec(5, decision="injected", service="openai", source="mcp", bytes=100, duration_ms=10),
    rec(6, decision="injected", service="openai", source="mcp", bytes=50, duration_ms=20),
    rec(65, decision="refused", service="github", source="bot", reason="method POST not allowed"),
    rec(70, decision="refused", service="github", source="bot", reason="method POST not allowed"),
    rec(71, decision="refused", service="github", source="mcp", reason="host not bound"),
    rec(130, decision="error", service="openai", source="bot", bytes=0, duration_ms=300),
    rec(131, decision="revealed", service="openai", source="mcp", action="reveal"),
    rec(132, decision="lost", source="cli"),
    rec(-1, decision="injected", service="openai", source="mcp"),  # before the window
    rec(180, decision="injected", service="openai", source="mcp"),  # at its end: excluded
    {"decision": "injected"},  # no time
]


def test_the_timeline_counts_each_bucket_by_decision() -> None:
    ov = overview(RECORDS, START, START + timedelta(hours=3), timedelta(hours=1))
    assert ov.total == 8
    assert [b.start for b in ov.timeline] == [START + timedelta(hours=h) for h in range(3)]
    assert [b.counts["injected"] for b in ov.timeline] == [2, 0, 0]
    assert [b.counts["refused"] for b in ov.timeline] == [0, 3, 0]
    last = ov.timeline[2].counts
    assert (last["error"], last["revealed"], last["other"]) == (1, 1, 1)


def test_the_matrix_counts_requests_bytes_and_errors_per_service_and_agent() -> None:
    ov = overview(RECORDS, START, START + timedelta(hours=3), timedelta(hours=1))
    assert ov.services == ["(none)", "github", "openai"] and ov.agents == ["bot", "cli", "mcp"]
    openai_mcp = ov.matrix[("openai", "mcp")]
    assert (openai_mcp.count, openai_mcp.bytes, openai_mcp.errors) == (3, 150, 0)
    openai_bot = ov.matrix[("openai", "bot")]
    assert (openai_bot.count, openai_bot.errors) == (1, 1)
    assert ("github", "cli") not in ov.matrix


def test_refusals_are_grouped_by_reason_largest_first() -> None:
    ov = overview(RECORDS, START, START + timedelta(hours=3), timedelta(hours=1))
    assert ov.refusals == [("method POST not allowed", 2), ("host not bound", 1)]


def test_latency_percentiles_are_nearest_rank_per_service() -> None:
    ov = overview(RECORDS, START, START + timedelta(hours=3), timedelta(hours=1))
    (only,) = ov.latency
    assert (only.service, only.count, only.p50, only.max) == ("openai", 3, 20.0, 300.0)


@pytest.mark.parametrize(("p", "want"), [(50, 5), (90, 9), (99, 10), (100, 10), (1, 1)], ids=str)
def test_percentile(p: float, want: float) -> None:
    assert percentile([float(v) for v in range(1, 11)], p) == want


@pytest.mark.parametrize(
    ("span", "width"),
    [(timedelta(hours=1), timedelta(minutes=5)), (timedelta(days=1), timedelta(hours=1)),
     (timedelta(days=7), timedelta(hours=6)), (timedelta(days=30), timedelta(days=1)),
     (timedelta(days=400), timedelta(weeks=1))],
    ids=["hour", "day", "week", "month", "year"],
)  # fmt: skip
def test_bucket_width_keeps_the_timeline_readable(span: timedelta, width: timedelta) -> None:
    assert bucket_width(span) == width


def test_limit_state_reads_the_providers_headers() -> None:
    state = limit_state("openai", {"x-ratelimit-remaining-requests": "7", "x-ratelimit-limit-requests": "10",
                                   "x-ratelimit-reset-requests": "30s"}, 1000.0)  # fmt: skip
    assert state is not None and (state.remaining, state.limit, state.reset_at) == (7, 10, 1030.0)
    assert limit_state("openai", {"content-type": "text/plain"}, 1000.0) is None


def test_the_svg_carries_each_figure_and_escapes_what_agents_wrote() -> None:
    ov = overview(RECORDS, START, START + timedelta(hours=3), timedelta(hours=1))
    svg = timeline_svg(ov)
    assert svg.count('data-decision="refused" data-count="3"') == 1
    bars = bars_svg([('<script>alert("x")</script>', 2)])
    assert "<script>" not in bars and "&lt;script&gt;" in bars
