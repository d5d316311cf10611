"""A local request budget per service: at most N requests per period, refused before they leave.

A guard against an agent in a loop burning a paid API's quota, enforced where every request
passes (the proxy) and shared by every process on the vault. The limit is a record of the
vault (kind ``budget``, bound to the service); the counts are records of kind ``usage`` in a
store of their own (locally a small SQLite file next to the vault), so that counting a request
neither makes every process reload the vault's secrets nor waits for the vault's writers.

Fixed windows aligned on the period (an hourly budget resets on the hour): simple to reason
about and to tell the agent: "retry in 1,234 s".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidService, UnknownService, VaultBusy
from ..paths import ensure_private
from ..storage.protocol import Store, Value
from ..storage.sqlite import SQLiteStore
from ..store import Snapshot, Vault

log = logging.getLogger(__name__)
USAGE_FILE = "budget-usage.db"
_PERIOD = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
KIND, USAGE = "budget", "usage"  # {"max_requests": int, "period": float}; {"window_start", "count"}


@dataclass(frozen=True, slots=True)
class Budget:
    max_requests: int
    period: float  # seconds

    def describe(self) -> str:
        return f"{self.max_requests} requests per {format_period(self.period)}"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    used: int  # requests counted in the current window, this one included when allowed
    retry_after: float  # seconds until the window resets


def parse_period(text: str) -> float:
    """``30s``, ``15m``, ``1h``, ``1d`` to seconds; InvalidService otherwise."""
    match = _PERIOD.match(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise InvalidService(f"period {text!r} must look like 30s, 15m, 1h or 1d")
    return float(int(match[1]) * _UNIT[match[2]])


def format_period(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNIT[unit] == 0:
            return f"{int(seconds // _UNIT[unit])}{unit}"
    return f"{int(seconds)}s"


def judge(budget: Budget, window_start: float | None, count: int, now: float) -> tuple[Verdict, float]:
    """Count one request against the budget: the verdict, and the window the count now belongs to."""
    current = now - now % budget.period
    if window_start != current:
        count = 0
    retry_after = current + budget.period - now
    if count >= budget.max_requests:
        return Verdict(False, count, retry_after), current
    return Verdict(True, count + 1, retry_after), current


def set_budget(vault: Vault, name: str, budget: Budget | None) -> None:
    """Set (or with None, remove) the budget of an existing service."""
    if budget is not None and budget.max_requests < 1:
        raise InvalidService("--max-requests must be at least 1")
    with vault.store.atomic() as batch:
        if batch.service(name) is None:
            raise UnknownService(name, list(batch.services()))
        if budget is None:
            batch.delete(KIND, name)
        else:
            batch.put(KIND, name, {"max_requests": budget.max_requests, "period": budget.period}, service=name)


def budget_of(vault: Vault, name: str) -> Budget | None:
    with vault.store.read() as batch:
        record = batch.get(KIND, name)
    return None if record is None else _budget(record.fields)


def budgets_as_of(vault: Vault, snapshot: Snapshot) -> dict[str, Budget]:
    """Every service's budget as of ``snapshot``: read once per change of the budgets, which move
    the store's change counter like the services do, rather than once per proxied request."""

    def build() -> dict[str, Budget]:
        with vault.store.read() as batch:
            return {r.key: _budget(r.fields) for r in batch.records(KIND)}

    return snapshot.derived("budgets", build)


def _budget(fields: Mapping[str, Value]) -> Budget:
    return Budget(int(fields["max_requests"] or 0), float(fields["period"] or 0))


class UsageCounter:
    """Counts requests per service, atomically across processes: in ``budget-usage.db`` beside
    the vault at ``home``, or in ``store`` (a team server's)."""

    def __init__(self, home: Path, store: Store | None = None) -> None:
        self._own = store is None
        if store is None:
            path = home / USAGE_FILE
            store = SQLiteStore.side_file(path)
            ensure_private(path)
        self._store = store

    def take(self, name: str, budget: Budget, now: float) -> Verdict:
        """Judge and count one request in one batch, so two processes never both take the last one.

        If the count cannot be written (its store stayed locked by another writer for the whole
        wait), the request is let through uncounted and a warning logged: a budget guards against
        an agent in a loop, and a per-request write must not fail the request."""
        try:
            return self._take(name, budget, now)
        except VaultBusy:
            log.warning("request to %r not counted against its budget: the usage store stayed locked", name)
            return Verdict(True, 0, budget.period - now % budget.period)

    def _take(self, name: str, budget: Budget, now: float) -> Verdict:
        with self._store.atomic() as batch:
            record = batch.get(USAGE, name)
            fields = record.fields if record is not None else {}
            start = fields.get("window_start")
            count = fields.get("count")
            verdict, window = judge(
                budget,
                float(start) if isinstance(start, int | float) else None,
                int(count) if isinstance(count, int) else 0,
                now,
            )
            if verdict.allowed:
                batch.put(USAGE, name, {"window_start": window, "count": verdict.used}, quiet=True)
            return verdict

    def close(self) -> None:
        if self._own:
            self._store.close()
