"""Medians and spreads over rounds, and the rows and targets a benchmark reports."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; enough for latency figures."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over several rounds: the median, and the lowest and highest round."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def show(self, digits: int) -> str:
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}–{self.high:.{digits}f}]"


def digits_for(value: float) -> int:
    magnitude = abs(value)
    return 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 0.1 else 4


@dataclass(frozen=True, slots=True)
class Row:
    """``subject`` measured against ``baseline`` in the same rounds; the ratio is taken per round."""

    section: str
    case: str
    metric: str
    subject: str
    value: Spread
    baseline: str
    baseline_value: Spread
    ratio: Spread

    @classmethod
    def paired(
        cls,
        section: str,
        case: str,
        metric: str,
        subject: tuple[str, Sequence[float]],
        baseline: tuple[str, Sequence[float]],
    ) -> Row:
        (name, values), (base_name, base_values) = subject, baseline
        ratios = [v / b for v, b in zip(values, base_values, strict=True) if b]
        return cls(section, case, metric, name, Spread.of(values), base_name, Spread.of(base_values), Spread.of(ratios))


@dataclass(frozen=True, slots=True)
class Target:
    """A figure from the issue's list: what was measured, the limit, and whether it holds."""

    name: str
    measured: str
    limit: str
    met: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.met else "MISS"
