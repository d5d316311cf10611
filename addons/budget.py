"""Local request budget: a service's calls beyond its budget are refused before they leave.

Runs after the destination and policy checks and before any token refresh or injection, so
a refused call costs the provider nothing. The answer is a 429 with ``Retry-After`` and a
reason that says when to try again.
"""

from __future__ import annotations

import math
import time

from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.limits.budget import UsageCounter, budgets_as_of

from .flowmeta import SERVICE, flow_snapshot, is_settled, refuse


class LocalBudget:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._counter: UsageCounter | None = None

    def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        budget = budgets_as_of(self._vault, flow_snapshot(flow, self._vault)).get(name)
        if budget is None:
            return
        if self._counter is None:
            self._counter = UsageCounter(self._vault.home)
        verdict = self._counter.take(name, budget, time.time())
        if not verdict.allowed:
            wait = math.ceil(verdict.retry_after)
            reason = f"the local budget of {name!r} ({budget.describe()}) is used up; retry in {wait} s"
            refuse(flow, 429, reason, {"Retry-After": str(wait)})

    def done(self) -> None:
        if self._counter is not None:
            self._counter.close()
            self._counter = None
