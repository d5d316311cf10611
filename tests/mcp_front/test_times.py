from __future__ import annotations

import pytest

from clavis_mcp.mcp_front.times import duration, expiry_fields, expiry_phrase, iso, relative

NOW = 1_800_000_000.0

DURATIONS = [
    ("seconds", 5, "5 s"),
    ("just-under-two-minutes", 89, "89 s"),
    ("minutes", 34 * 60, "34 minutes"),
    ("hours-and-minutes", 11 * 3600 + 42 * 60, "11 h 42 min"),
    ("whole-hours", 3 * 3600, "3 h"),
    ("days", 5 * 86400, "5 days"),
]


@pytest.mark.parametrize(("seconds", "words"), [r[1:] for r in DURATIONS], ids=[r[0] for r in DURATIONS])
def test_a_span_is_said_in_the_units_a_person_would_use(seconds: float, words: str) -> None:
    assert duration(seconds) == words == duration(-seconds)


def test_times_are_iso_8601_in_utc() -> None:
    assert iso(NOW) == "2027-01-15T08:00:00Z" and iso(None) is None


def test_relative_times_say_in_or_ago() -> None:
    assert relative(NOW + 34 * 60, NOW) == "in 34 minutes"
    assert relative(NOW - 6, NOW) == "6 s ago"


def test_expiry_is_stated_with_expired_when_it_passed() -> None:
    assert expiry_phrase(NOW + 42 * 60 + 11 * 3600, NOW) == "expires in 11 h 42 min"
    assert expiry_fields(NOW - 6, NOW) == {"expires_at": "2027-01-15T07:59:54Z", "expiry": "expired 6 s ago",
                                           "expired": True}  # fmt: skip
    assert expiry_fields(None, NOW) == {"expires_at": None, "expiry": None, "expired": False}
