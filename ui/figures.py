"""The overview's figures, computed from audit records: pure functions, so tests pin them.

The page, the HTML report and the tests read the same :class:`Overview`, so what a person sees
in the browser and in an exported file is one computation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clavis_mcp.vault.audit.filters import record_time
from clavis_mcp.vault.limits.ratelimit_parse import parse_rate_limits

DECISIONS = ("injected", "passed", "refused", "error", "revealed")
OTHER = "other"
STACK = (*DECISIONS, OTHER)  # the timeline's layers, bottom first

PERIODS: dict[str, tuple[timedelta, timedelta]] = {
    "hour": (timedelta(hours=1), timedelta(minutes=5)),
    "day": (timedelta(days=1), timedelta(hours=1)),
    "week": (timedelta(weeks=1), timedelta(days=1)),
}
_WIDTHS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
           timedelta(hours=6), timedelta(days=1), timedelta(weeks=1))  # fmt: skip
MAX_BUCKETS = 48


def bucket_width(span: timedelta) -> timedelta:
    """The narrowest width that draws ``span`` in at most MAX_BUCKETS bars."""
    return next((w for w in _WIDTHS if span / w <= MAX_BUCKETS), _WIDTHS[-1])


def decision_of(record: Mapping[str, Any]) -> str:
    decision = record.get("decision")
    return decision if decision in DECISIONS else OTHER


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(slots=True)
class Cell:
    """One service × agent pair: requests, bytes of responses, and errors (decision ``error``)."""

    count: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class Latency:
    service: str
    count: int
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class LimitState:
    service: str
    remaining: int | None
    limit: int | None
    reset_at: float | None
    observed_at: float
    scope: str


@dataclass(frozen=True, slots=True)
class ChainBadge:
    """What ``clavis-mcp audit verify`` says, for the badge: ok, or the first problem."""

    ok: bool
    summary: str
    count: int


@dataclass(slots=True)
class Overview:
    start: datetime
    end: datetime
    width: timedelta
    total: int
    timeline: list[Bucket]
    services: list[str]
    agents: list[str]
    matrix: dict[tuple[str, str], Cell]
    refusals: list[tuple[str, int]]
    latency: list[Latency]
    limits: list[LimitState] = field(default_factory=list)
    chain: ChainBadge | None = None


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of values sorted ascending (one of the values, never interpolated)."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def overview(records: Iterable[Mapping[str, Any]], start: datetime, end: datetime, width: timedelta) -> Overview:
    """Every figure of the overview for the records in [start, end); others are ignored."""
    n = max(1, math.ceil((end - start) / width))
    buckets = [Bucket(start + i * width, dict.fromkeys(STACK, 0)) for i in range(n)]
    matrix: dict[tuple[str, str], Cell] = {}
    reasons: dict[str, int] = {}
    durations: dict[str, list[float]] = {}
    total = 0
    for record in records:
        moment = record_time(dict(record))
        if moment is None or not start <= moment < end:
            continue
        total += 1
        decision = decision_of(record)
        buckets[min(n - 1, int((moment - start) / width))].counts[decision] += 1
        service, agent = _name(record.get("service")), _name(record.get("source"))
        cell = matrix.setdefault((service, agent), Cell())
        cell.count += 1
        size = record.get("bytes")
        cell.bytes += size if isinstance(size, int) else 0
        cell.errors += decision == "error"
        if decision == "refused":
            reason = str(record.get("reason") or "(no reason given)")
            reasons[reason] = reasons.get(reason, 0) + 1
        duration = record.get("duration_ms")
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            durations.setdefault(service, []).append(float(duration))
    latency = []
    for service, values in sorted(durations.items()):
        values.sort()
        latency.append(Latency(service, len(values), percentile(values, 50), percentile(values, 90),
                               percentile(values, 99), values[-1]))  # fmt: skip
    return Overview(
        start=start,
        end=end,
        width=width,
        total=total,
        timeline=buckets,
        services=sorted({s for s, _ in matrix}),
        agents=sorted({a for _, a in matrix}),
        matrix=matrix,
        refusals=sorted(reasons.items(), key=lambda item: (-item[1], item[0])),
        latency=latency,
    )


def limit_state(service: str, headers: Mapping[str, str], observed_at: float) -> LimitState | None:
    """The most constraining limit a service's last rate-limit headers announce, or None."""
    parsed = parse_rate_limits(headers, observed_at)
    if parsed is None:
        return None
    return LimitState(service, parsed.remaining, parsed.limit, parsed.reset_at, observed_at, parsed.scope)


def _name(value: object) -> str:
    return "(none)" if value is None else str(value)
