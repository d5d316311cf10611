"""Times as the tools show them: ISO 8601 for programs, and a phrase a model can repeat.

A model handed ``1764872400.0`` has to do arithmetic it gets wrong; handed
``2025-12-04T18:20:00Z`` and "in 34 minutes" it can answer the user directly.

The times come from recorded data (an upstream's headers, a token's expiry), so one that no
date can hold is shown as its raw figure or as unknown rather than failing the whole tool.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import TypedDict


def iso(when: float | None) -> str | None:
    """``2026-12-04T22:15:03Z`` (UTC, whole seconds), the raw figure beyond ``datetime``'s range, or None."""
    if when is None:
        return None
    try:
        return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return str(when)


def duration(seconds: float) -> str:
    """A span in the two largest units that matter: ``11 h 42 min``, ``34 minutes``, ``5 s``, ``3 days``."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} minutes"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days = round(seconds / 86400)
    return f"{days} days"


def relative(when: float, now: float | None = None) -> str:
    """``in 34 minutes``, ``34 minutes ago``, or ``at an unknown time`` for an infinite or NaN time."""
    delta = when - (time.time() if now is None else now)
    if not math.isfinite(delta):
        return "at an unknown time"
    return f"in {duration(delta)}" if delta >= 0 else f"{duration(delta)} ago"


def expiry_phrase(expires_at: float | None, now: float | None = None) -> str | None:
    """``expires in 11 h 42 min``, ``expired 3 days ago``, or None without an expiry."""
    if expires_at is None:
        return None
    now = time.time() if now is None else now
    return f"expires {relative(expires_at, now)}" if expires_at > now else f"expired {relative(expires_at, now)}"


class ExpiryFields(TypedDict):
    expires_at: str | None
    expiry: str | None
    expired: bool


def expiry_fields(expires_at: float | None, now: float | None = None) -> ExpiryFields:
    """The three expiry fields every tool shows: ``expires_at`` (ISO), ``expiry`` (words), ``expired``."""
    now = time.time() if now is None else now
    return {
        "expires_at": iso(expires_at),
        "expiry": expiry_phrase(expires_at, now),
        "expired": expires_at is not None and expires_at <= now,
    }
