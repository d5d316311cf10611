"""Request budgets shared by every replica: a fixed window per service, counted in one PostgreSQL row.

A service's definition may carry ``"budget": {"max_requests": N, "period_seconds": S}``. Each call
takes one unit with a single atomic upsert, so N requests per window hold across any number of
replicas; a call beyond it is refused before it leaves, with the whole seconds until the window
turns (the SDK reads ``Retry-After`` only as an integer). Every route that sends with a service's
credential goes through `charge`, so an entry point cannot skip the budget. A request the
pipeline's method and path policy will refuse is not charged (:func:`policy_allows`): it never
reaches the provider, and must not use up the budget of the requests that would.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

from clavis_mcp.vault import Service
from clavis_mcp.vault.errors import ApiRefused
from clavis_mcp.vault.method_overrides import overrides_of
from clavis_mcp.vault.request_path import normalise_path

if TYPE_CHECKING:
    from .replica import Replica

_TAKE = """
INSERT INTO budget_usage (service, window_start, count) VALUES (%(service)s, %(window)s, 1)
ON CONFLICT (service) DO UPDATE SET
    count = CASE WHEN budget_usage.window_start = excluded.window_start THEN budget_usage.count + 1 ELSE 1 END,
    window_start = excluded.window_start
RETURNING count
"""


def parse_budget(definition: dict[str, Any]) -> tuple[int, float] | None:
    budget = definition.get("budget")
    if budget is None:
        return None
    try:
        limit, period = int(budget["max_requests"]), float(budget["period_seconds"])
    except (KeyError, TypeError, ValueError):
        raise ApiRefused(400, '\'budget\' must be {"max_requests": N, "period_seconds": S}') from None
    if limit < 1 or period <= 0:
        raise ApiRefused(400, "a budget needs max_requests >= 1 and period_seconds > 0")
    return limit, period


def take(conn: psycopg.Connection[Any], service: str, budget: tuple[int, float], now: float | None = None) -> None:
    """Count one request against the service's budget; ApiRefused(429) if the window is used up."""
    limit, period = budget
    now = time.time() if now is None else now
    window = math.floor(now / period) * period
    row = conn.execute(_TAKE, {"service": service, "window": window}).fetchone()
    if row is not None and int(row[0]) > limit:
        wait = max(math.ceil(window + period - now), 1)
        raise ApiRefused(
            429,
            f"the team budget of {service!r} ({limit} requests per {period:g} s) is used up; retry in {wait} s",
            {"Retry-After": str(wait)},
        )


def charge(replica: Replica, service: Service, method: str, url: str, **kwargs: Any) -> None:
    """Take one unit of ``service``'s budget if its definition has one and the pipeline's policy will
    let the request through (``method``, ``url`` and the ``httpx`` arguments the egress builds it
    with; a body streamed later is not judged here); ApiRefused(429) when used up.

    Called by each route after the caller's scope check and before anything goes to the provider,
    with the definition the route's own mirror sync just read.
    """
    budget = parse_budget(replica.mirror.definitions.get(service.name, {}))
    if budget is not None and policy_allows(service, httpx.Request(method, url, **kwargs)):
        take(replica.conn, service.name, budget)


def policy_allows(service: Service, sent: httpx.Request) -> bool:
    """Whether the pipeline's RequestPolicy stage (addons/request_policy.py) lets ``sent`` through,
    judged with the same vault functions on the same bytes: the request line's method and every
    method override, and the path as a server resolves it. Never stricter than that stage, or a
    request would go uncharged; the stage itself still answers the ones it refuses, as before."""
    path, _, query = sent.url.raw_path.decode("latin-1").partition("?")
    if service.methods:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in sent.headers.raw]
        kind, coding = sent.headers.get("content-type", ""), sent.headers.get("content-encoding", "")
        try:
            overrides = overrides_of(headers, query, kind, coding, sent.content)
        except ValueError:
            return False
        if any(m not in service.methods for m in [sent.method.upper(), *(m for _, m in overrides)]):
            return False
    if not service.path_prefixes:
        return True
    try:
        return service.prefix_for(normalise_path(path)) is not None
    except ValueError:
        return False
