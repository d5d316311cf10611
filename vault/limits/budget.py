"""A local request budget per service: at most N requests per period, refused before they leave.

A guard against an agent in a loop burning a paid API's quota, enforced where every request
passes (the proxy) and shared by every process on the vault. The limit is set in the vault;
the counts live in their own small SQLite file next to it, so that counting a request does
not make every process reload the vault's secrets.

Fixed windows aligned on the period (an hourly budget resets on the hour): simple to reason
about and to tell the agent: "retry in 1,234 s".
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidService, UnknownService
from ..paths import ensure_private
from ..store import Snapshot, Vault

USAGE_FILE = "budget-usage.db"
_PERIOD = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    service TEXT PRIMARY KEY REFERENCES services(name) ON DELETE CASCADE,
    max_requests INTEGER NOT NULL,
    period REAL NOT NULL
)
"""
_USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (service TEXT PRIMARY KEY, window_start REAL NOT NULL, count INTEGER NOT NULL)
"""


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
    _ensure_schema(vault)
    with vault.transaction() as conn:
        if conn.execute("SELECT 1 FROM services WHERE name = ?", (name,)).fetchone() is None:
            raise UnknownService(name, [r[0] for r in conn.execute("SELECT name FROM services ORDER BY name")])
        conn.execute("DELETE FROM budgets WHERE service = ?", (name,))
        if budget is not None:
            conn.execute(
                "INSERT INTO budgets (service, max_requests, period) VALUES (?, ?, ?)",
                (name, budget.max_requests, budget.period),
            )


def budget_of(vault: Vault, name: str) -> Budget | None:
    _ensure_schema(vault)
    rows = vault.query("SELECT max_requests, period FROM budgets WHERE service = ?", (name,))
    return Budget(int(rows[0][0]), float(rows[0][1])) if rows else None


def budgets_as_of(vault: Vault, snapshot: Snapshot) -> dict[str, Budget]:
    """Every service's budget as of ``snapshot``: read once per change of the table, which is
    versioned with the services, rather than once per proxied request."""
    _ensure_schema(vault)
    return snapshot.derived("budgets", lambda: {
        str(name): Budget(int(limit), float(period))
        for name, limit, period in vault.query("SELECT service, max_requests, period FROM budgets")
    })  # fmt: skip


class UsageCounter:
    """Counts requests per service in ``budget-usage.db``, atomically across processes."""

    def __init__(self, home: Path) -> None:
        path = home / USAGE_FILE
        if not path.exists():
            path.touch(mode=0o600)
        ensure_private(path)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_USAGE_SCHEMA)
        self._lock = threading.Lock()

    def take(self, name: str, budget: Budget, now: float) -> Verdict:
        """Judge and count one request in one transaction, so two processes never both take the last one."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT window_start, count FROM usage WHERE service = ?", (name,)).fetchone()
                verdict, window = judge(budget, row[0] if row else None, row[1] if row else 0, now)
                if verdict.allowed:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO usage (service, window_start, count) VALUES (?, ?, ?)",
                        (name, window, verdict.used),
                    )
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()
            return verdict

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _ensure_schema(vault: Vault) -> None:
    vault.ensure_table("budgets", _SCHEMA, versioned=True)
