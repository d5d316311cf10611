"""The local request budget: windows, counting across connections, configuration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clavis_mcp.vault import InvalidService, UnknownService, Vault, validate_secret
from clavis_mcp.vault.limits.budget import (
    Budget,
    UsageCounter,
    budget_of,
    format_period,
    judge,
    parse_period,
    set_budget,
)
from tests.conftest import SECRET, make_service

HOUR = Budget(3, 3600.0)
T = 1_700_000_000.0  # 22:13:20 UTC: 800 s into the hour


@pytest.mark.parametrize(
    ("window", "count", "now", "allowed", "used", "retry_after"),
    [
        (None, 0, T, True, 1, 2800.0),
        (T - 800, 2, T, True, 3, 2800.0),
        (T - 800, 3, T, False, 3, 2800.0),
        (T - 800 - 3600, 3, T, True, 1, 2800.0),
        (T - 800, 3, T - 800 + 3599.5, False, 3, 0.5),
    ],
    ids=["first-request", "last-one-left", "used-up", "new-window-resets", "half-second-to-reset"],
)
def test_fixed_window_judgement(
    window: float | None, count: int, now: float, allowed: bool, used: int, retry_after: float
) -> None:
    verdict, start = judge(HOUR, window, count, now)
    assert (verdict.allowed, verdict.used) == (allowed, used)
    assert verdict.retry_after == pytest.approx(retry_after)
    assert start == T - 800


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("1d", 86400.0), (" 2H ", 7200.0)],
    ids=["seconds", "minutes", "hour", "day", "spaces-and-case"],
)  # fmt: skip
def test_periods(text: str, seconds: float) -> None:
    assert parse_period(text) == seconds
    assert parse_period(format_period(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "0h", "1w", "-1h", "1.5h"], ids=str)
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(InvalidService, match="must look like 30s, 15m, 1h or 1d"):
        parse_period(text)


def test_budget_is_set_read_and_removed_with_its_service(vault: Vault) -> None:
    vault.add_service(make_service("svc", "api.x.test"), validate_secret(SECRET))
    assert budget_of(vault, "svc") is None
    set_budget(vault, "svc", HOUR)
    assert budget_of(vault, "svc") == HOUR and HOUR.describe() == "3 requests per 1h"
    set_budget(vault, "svc", None)
    assert budget_of(vault, "svc") is None
    set_budget(vault, "svc", HOUR)
    vault.remove_service("svc")
    assert budget_of(vault, "svc") is None
    with pytest.raises(UnknownService):
        set_budget(vault, "svc", HOUR)
    with pytest.raises(InvalidService, match="at least 1"):
        set_budget(vault, "svc", Budget(0, 60.0))


def test_concurrent_counters_on_one_file_never_exceed_the_budget(home: Path, vault: Vault) -> None:
    """Separate connections, as separate processes have: 8 x 25 attempts, exactly 20 allowed."""
    budget = Budget(20, 3600.0)
    counters = [UsageCounter(home) for _ in range(8)]
    allowed: list[bool] = []
    lock = threading.Lock()

    def spend(counter: UsageCounter) -> None:
        for _ in range(25):
            verdict = counter.take("svc", budget, T)
            with lock:
                allowed.append(verdict.allowed)

    threads = [threading.Thread(target=spend, args=(c,)) for c in counters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for counter in counters:
        counter.close()
    assert allowed.count(True) == 20 and len(allowed) == 200
    assert (home / "budget-usage.db").stat().st_mode & 0o777 == 0o600
