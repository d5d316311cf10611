"""Time expressions for audit review: ``1h``, ``30m``, ``2d12h``, ``today``, ``yesterday``, ISO dates.

Each expression names one instant, so ``--since yesterday --until today`` is exactly
yesterday. Dates and times without a zone are the user's local time, as they read them.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from ..errors import AuditQueryError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^(?:[0-9]+[smhdw])+$")
_PART = re.compile(r"([0-9]+)([smhdw])")


def parse_when(text: str, now: datetime) -> datetime:
    """The instant ``text`` names, relative to ``now`` (an aware datetime in the user's zone)."""
    spoken = text.strip().lower()
    if spoken == "now":
        return now
    if spoken in ("today", "yesterday"):
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        return midnight - timedelta(days=1) if spoken == "yesterday" else midnight
    if _DURATION.match(spoken):
        return now - timedelta(**_duration_parts(spoken))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditQueryError(
            f"cannot read the time {text!r}: use a duration back from now (30m, 1h, 2d, 1w), "
            "today, yesterday, or an ISO date or time (2026-11-24, 2026-11-24T09:30)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)


def _duration_parts(spoken: str) -> dict[str, float]:
    parts: dict[str, float] = {}
    for amount, unit in _PART.findall(spoken):
        parts[_UNITS[unit]] = parts.get(_UNITS[unit], 0) + int(amount)
    return parts
