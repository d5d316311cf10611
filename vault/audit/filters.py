"""Which audit records a review asks for, in two equivalent forms.

The same filter runs as SQL against the review index (for the history) and as a predicate
on records as they arrive (for ``--follow``); a test table holds the two forms together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import AuditQueryError

_STATUS = re.compile(r"^([1-5])(?:([0-9]{2})|xx)$")


@dataclass(frozen=True, slots=True)
class StatusRange:
    """``404`` is [404, 405); ``4xx`` is [400, 500)."""

    low: int
    high: int


def parse_status(text: str) -> StatusRange:
    match = _STATUS.match(text.strip().lower())
    if not match:
        raise AuditQueryError(f"cannot read the status {text!r}: use a code such as 404, or a class such as 4xx")
    if match.group(2) is None:
        low = int(match.group(1)) * 100
        return StatusRange(low, low + 100)
    code = int(match.group(1) + match.group(2))
    return StatusRange(code, code + 1)


def record_time(record: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(record["time"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Every field that is set must match; ``since`` is inclusive, ``until`` exclusive."""

    service: str | None = None
    agent: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    status: StatusRange | None = None
    host: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        for name, value in self._equalities():
            if record.get(name) != value:
                return False
        if self.status is not None:
            status = record.get("status")
            if not isinstance(status, int) or not self.status.low <= status < self.status.high:
                return False
        if self.since is not None or self.until is not None:
            moment = record_time(record)
            if moment is None:
                return False
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment >= self.until:
                return False
        return True

    def where(self) -> tuple[str, list[object]]:
        """A SQL condition over the index columns, with its parameters."""
        clauses = [f"{name} = ?" for name, _ in self._equalities()]
        params: list[object] = [value for _, value in self._equalities()]
        if self.status is not None:
            clauses.append("status >= ? AND status < ?")
            params += [self.status.low, self.status.high]
        if self.since is not None:
            clauses.append("t >= ?")
            params.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("t < ?")
            params.append(self.until.timestamp())
        return (" AND ".join(clauses) or "1"), params

    def _equalities(self) -> list[tuple[str, str]]:
        pairs = [("service", self.service), ("source", self.agent), ("decision", self.decision)]
        if self.host is not None:
            pairs.append(("host", self.host.strip().lower().rstrip(".")))
        return [(name, value) for name, value in pairs if value is not None]
