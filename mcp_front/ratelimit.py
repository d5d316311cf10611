"""Rate-limit figures for the tools, from a response's headers or from what the proxy recorded.

Parsing the providers' dialects is the vault's job (``vault.ratelimit_parse``); here the
result is put in the tools' output shape, with the seconds left counted from now.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from clavis_mcp.vault import Vault
from clavis_mcp.vault.limits.ratelimit_parse import parse_rate_limits
from clavis_mcp.vault.limits.ratelimits import latest

from .models import RateLimit
from .times import iso, relative


def rate_limit_of(headers: Iterable[tuple[str, str]], observed_at: float, now: float | None = None) -> RateLimit | None:
    """The most constraining limit announced by ``headers``, seen at ``observed_at``; None if none."""
    parsed = parse_rate_limits(list(headers), observed_at)
    if parsed is None:
        return None
    now = time.time() if now is None else now
    return RateLimit(
        remaining=parsed.remaining,
        limit=parsed.limit,
        reset_at=iso(parsed.reset_at),
        resets=None if parsed.reset_at is None else f"resets {relative(parsed.reset_at, now)}",
        seconds_to_reset=None if parsed.reset_at is None else round(parsed.reset_at - now, 3),
        header=parsed.source,
        observed_at=iso(observed_at),
    )


def recorded_rate_limit(vault: Vault, service: str) -> RateLimit | None:
    """The figures from the last response the proxy saw for ``service`` (any client, any process)."""
    found = latest(vault, service)
    if found is None:
        return None
    headers, observed_at = found
    return rate_limit_of(headers.items(), observed_at)
