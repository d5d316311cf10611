from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from clavis_mcp.vault.audit.timestamps import parse_when
from clavis_mcp.vault.errors import AuditQueryError

LOCAL = timezone(timedelta(hours=2))
NOW = datetime(2026, 11, 25, 10, 30, tzinfo=LOCAL)

WHEN = [
    ("now", NOW),
    ("30m", datetime(2026, 11, 25, 10, 0, tzinfo=LOCAL)),
    ("1h", datetime(2026, 11, 25, 9, 30, tzinfo=LOCAL)),
    ("1h30m", datetime(2026, 11, 25, 9, 0, tzinfo=LOCAL)),
    ("90s", datetime(2026, 11, 25, 10, 28, 30, tzinfo=LOCAL)),
    ("2d", datetime(2026, 11, 23, 10, 30, tzinfo=LOCAL)),
    ("1w", datetime(2026, 11, 18, 10, 30, tzinfo=LOCAL)),
    ("today", datetime(2026, 11, 25, tzinfo=LOCAL)),
    ("yesterday", datetime(2026, 11, 24, tzinfo=LOCAL)),
    (" Yesterday ", datetime(2026, 11, 24, tzinfo=LOCAL)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=LOCAL)),
    ("2026-11-24T09:30", datetime(2026, 11, 24, 9, 30, tzinfo=LOCAL)),
    ("2026-11-24 09:30:15", datetime(2026, 11, 24, 9, 30, 15, tzinfo=LOCAL)),
    ("2026-11-24T09:30:00Z", datetime(2026, 11, 24, 9, 30, tzinfo=UTC)),
    ("2026-11-24T09:30:00+05:00", datetime(2026, 11, 24, 4, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "instant"), WHEN, ids=[w[0].strip() or "blank" for w in WHEN])
def test_time_expressions_name_one_instant(text: str, instant: datetime) -> None:
    assert parse_when(text, NOW) == instant


BAD = ["", "bogus", "1y", "-1h", "1.5h", "h", "2026-13-01", "last week", "1h ago"]


@pytest.mark.parametrize("text", BAD, ids=[b or "empty" for b in BAD])
def test_unreadable_times_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(AuditQueryError, match="30m, 1h, 2d.*today, yesterday.*ISO"):
        parse_when(text, NOW)
