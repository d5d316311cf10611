"""What the page reads: audit records through the review index, the chain check, rate limits.

Each call opens its own index connection (SQLite connections stay on their thread, and the page
answers from a thread pool); the vault, opened once by the command, is used under one lock.
Nothing here writes to the log: the page reviews it while the proxy and the MCP server append.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit.files import LogFiles, lines_from
from clavis_mcp.vault.audit.filters import AuditFilter, parse_status
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import AUDIT_FILE
from clavis_mcp.vault.audit.timestamps import parse_when
from clavis_mcp.vault.limits import ratelimits

from .figures import ChainBadge, LimitState, Overview, limit_state, overview

PAGE_SIZE = 50
Position = tuple[int, int]


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """The records table's filters: the index's own (:class:`AuditFilter`) plus method, path and
    free text, which are matched on the records read back."""

    where: AuditFilter
    method: str | None = None
    path: str | None = None
    text: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime | None = None) -> RecordQuery:
        """From the page's query string; a bad time or status raises AuditQueryError (one line)."""
        now = now or datetime.now().astimezone()
        get = {k: v.strip() for k, v in params.items() if v and v.strip()}.get
        since, until, status = get("since"), get("until"), get("status")
        where = AuditFilter(
            service=get("service"),
            agent=get("agent"),
            since=parse_when(since, now) if since else None,
            until=parse_when(until, now) if until else None,
            decision=get("decision"),
            status=parse_status(status) if status else None,
            host=get("host"),
        )
        method = get("method")
        text = get("q")
        return cls(where, method.upper() if method else None, get("path"), text.lower() if text else None)

    @property
    def narrows_records(self) -> bool:
        return bool(self.method or self.path or self.text)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """The whole filter on one record (the live tail applies it to each new record)."""
        return self.where.matches(dict(record)) and self.matches_rest(record)

    def matches_rest(self, record: Mapping[str, Any]) -> bool:
        if self.method and str(record.get("method", "")).upper() != self.method:
            return False
        if self.path and self.path not in str(record.get("path", "")):
            return False
        if self.text and self.text not in json.dumps(record, ensure_ascii=False).lower():
            return False
        return True


class AuditSource:
    def __init__(self, home: Path, vault: Vault | None) -> None:
        self.home = home
        self.files = LogFiles(home / AUDIT_FILE)
        self._vault = vault
        self.vault = vault
        self.vault_lock = self._vault_lock = threading.Lock()
        self._verified: tuple[tuple[tuple[str, int, int, int, int], ...], ChainBadge] | None = None

    def _index(self) -> AuditIndex:
        return AuditIndex(self.files)

    def records(self, where: AuditFilter, limit: int | None = None) -> list[dict[str, Any]]:
        """Matching records, oldest first (the newest ``limit`` when given)."""
        index = self._index()
        try:
            index.refresh()
            return list(index.read(index.select(where, limit)))
        finally:
            index.close()

    def overview(self, start: datetime, end: datetime, width: timedelta, *, verify: bool = True) -> Overview:
        found = self.records(AuditFilter(since=start, until=end))
        result = overview(found, start, end, width)
        result.limits = self.limits()
        result.chain = self.verify() if verify else None
        return result

    def page(self, query: RecordQuery, page: int, size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int, bool]:
        """Records of page ``page`` (1 = newest), newest first; the number matching; whether older ones exist."""
        index = self._index()
        try:
            index.refresh()
            if not query.narrows_records:
                total = index.count(query.where)
                newest = index.select(query.where, page * size)
                chosen = list(reversed(newest))[(page - 1) * size :]
                return list(index.read(chosen)), total, total > page * size
            matching = [r for r in index.read(index.select(query.where, None)) if query.matches_rest(r)]
        finally:
            index.close()
        matching.reverse()
        return matching[(page - 1) * size : page * size], len(matching), len(matching) > page * size

    def verify(self) -> ChainBadge | None:
        """The check ``clavis-mcp audit verify`` runs; None when the page was opened without the vault."""
        if self._vault is None:
            return None
        state = self._files_state()
        cached = self._verified
        if cached is not None and cached[0] == state:
            return cached[1]
        with self._vault_lock:
            log = AuditLog.for_vault(self._vault, self.files.live)
            report = log.verify()
        badge = ChainBadge(report.ok, report.summary(), report.count)
        self._verified = (state, badge)
        return badge

    def _files_state(self) -> tuple[tuple[str, int, int, int, int], ...]:
        """Inode, size and times of every log file and the checkpoint: while none changed, the
        chain's verdict stands (a large log is not read again on every page load). The change
        time (ctime) moves on any write and cannot be set back by the file's editor."""
        paths = [path for _, path in self.files.numbered()] + [self.files.lock_path]
        found = []
        for path in paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append((path.name, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
        return tuple(found)

    def limits(self) -> list[LimitState]:
        if self._vault is None:
            return []
        found = []
        with self._vault_lock:
            for service in self._vault.list_services():
                seen = ratelimits.latest(self._vault, service.name)
                state = limit_state(service.name, *seen) if seen else None
                if state is not None:
                    found.append(state)
        return found

    def end(self) -> Position:
        """Where the log ends now (as far as the index has read it): the live tail starts here."""
        index = self._index()
        try:
            return index.refresh()
        finally:
            index.close()

    def after(self, position: Position) -> tuple[list[dict[str, Any]], Position]:
        """Records appended after ``position``, across rotations, and the new position."""
        number, offset = position
        found: list[dict[str, Any]] = []
        while True:
            final = self.files.live_number() > number  # a rotated file no longer grows
            handle = self.files.open(number)
            if handle is not None:
                with handle:
                    for start, line in lines_from(handle, offset):
                        offset = start + len(line)
                        record = _record(line)
                        if record is not None:
                            found.append(record)
            if not final:
                return found, (number, offset)
            number, offset = number + 1, 0


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # not a record; verify reports it
    return record if isinstance(record, dict) else None
