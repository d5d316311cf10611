"""Requests held for a person's approval: one queue in the vault's home, shared by processes.

The proxy (``addons/approval.py``) puts a request here and waits; the page (``clavis-mcp ui``)
and the CLI (``clavis-mcp approvals``/``approve``/``deny``) read the queue and decide, each in its
own process, through one SQLite file beside the vault (WAL, 0600). A decision is a compare-and-set
on a pending row, and a timeout is the same compare-and-set from the proxy's side, so a request is
approved, denied or timed out exactly once: an approval that loses the race to the deadline is
refused with a message, never half-applied. Nothing here is secret: the method, the URL without
query values, the service, the agent and a short body preview already redacted by the proxy.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .audit.log import AuditLog
from .errors import ApprovalError, VaultNotFound

APPROVALS_FILE = "approvals.sqlite"
DEFAULT_TIMEOUT = 120.0
PENDING, APPROVED, DENIED, TIMED_OUT = "pending", "approved", "denied", "timed out"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    id TEXT PRIMARY KEY, created REAL NOT NULL, deadline REAL NOT NULL,
    service TEXT NOT NULL, agent TEXT NOT NULL, method TEXT NOT NULL, host TEXT NOT NULL,
    url TEXT NOT NULL, preview TEXT NOT NULL,
    state TEXT NOT NULL, decided_by TEXT, decided_at REAL, minutes INTEGER
);
CREATE INDEX IF NOT EXISTS held_by_state ON held (state, created);
CREATE TABLE IF NOT EXISTS grants (
    id INTEGER PRIMARY KEY, service TEXT NOT NULL, agent TEXT NOT NULL, method TEXT NOT NULL,
    host TEXT NOT NULL, until REAL NOT NULL, granted_by TEXT NOT NULL, held_id TEXT NOT NULL
);
"""
_COLUMNS = "id, created, deadline, service, agent, method, host, url, preview, state, decided_by, decided_at, minutes"


@dataclass(frozen=True, slots=True)
class Held:
    id: str
    created: float
    deadline: float
    service: str
    agent: str
    method: str
    host: str
    url: str
    preview: str
    state: str
    decided_by: str | None
    decided_at: float | None
    minutes: int | None


@dataclass(frozen=True, slots=True)
class Grant:
    """Requests like an approved one (service, agent, method, host) go out until ``until``."""

    granted_by: str
    until: float
    held_id: str


Needs = Callable[[str, str, str], bool]  # (service, agent, method) -> does a person have to approve?


def needs_for(mode: str) -> Needs:
    """A policy as a predicate: ``none``, ``writes`` (non-safe methods) or ``all``."""
    if mode == "none":
        return lambda service, agent, method: False
    if mode == "writes":
        return lambda service, agent, method: method.upper() not in SAFE_METHODS
    if mode == "all":
        return lambda service, agent, method: True
    raise ValueError(f"approval policy {mode!r}: use none, writes or all")


class Approvals:
    """The queue; one per process, safe to share between threads."""

    def __init__(self, home: Path) -> None:
        if not home.is_dir():
            raise VaultNotFound(f"no clavis-mcp home at {home}; create one with: clavis-mcp init")
        self.path = home / APPROVALS_FILE
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def hold(self, *, service: str, agent: str, method: str, host: str, url: str, preview: str,
             timeout: float, now: float | None = None) -> Held:  # fmt: skip
        now = time.time() if now is None else now
        held_id = os.urandom(4).hex()
        self._conn.execute(
            f"INSERT INTO held ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL,NULL)",
            (held_id, now, now + timeout, service, agent, method.upper(), host, url, preview, PENDING),
        )
        return self.get(held_id)

    def get(self, held_id: str) -> Held:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM held WHERE id = ?", (held_id,)).fetchone()
        if row is None:
            raise ApprovalError(f"no held request {held_id!r}: `clavis-mcp approvals` lists the waiting ones")
        return Held(*row)

    def pending(self, now: float | None = None) -> list[Held]:
        """Requests waiting for a decision, oldest first (those past their deadline are left out)."""
        now = time.time() if now is None else now
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM held WHERE state = ? AND deadline > ? ORDER BY created", (PENDING, now)
        ).fetchall()
        return [Held(*row) for row in rows]

    def decide(self, held_id: str, *, approve: bool, by: str, minutes: int = 0, now: float | None = None) -> Held:
        """Approve (once, or like requests for ``minutes``) or deny a pending request."""
        now = time.time() if now is None else now
        if minutes < 0:
            raise ApprovalError("minutes must be 0 (this request only) or more")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            held = self.get(held_id)
            if held.state != PENDING:
                raise ApprovalError(f"request {held_id} was already {held.state}" +
                                    (f" by {held.decided_by}" if held.decided_by else ""))  # fmt: skip
            if held.deadline <= now:
                raise ApprovalError(f"request {held_id} waited too long and was refused; the agent may send it again")
            state = APPROVED if approve else DENIED
            conn.execute(
                "UPDATE held SET state = ?, decided_by = ?, decided_at = ?, minutes = ? WHERE id = ?",
                (state, by, now, minutes if approve else None, held_id),
            )
            if approve and minutes:
                conn.execute(
                    "INSERT INTO grants (service, agent, method, host, until, granted_by, held_id) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (held.service, held.agent, held.method, held.host, now + minutes * 60, by, held_id),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return self.get(held_id)

    def expire(self, held_id: str, now: float | None = None) -> Held:
        """The proxy's side of the race: time a pending request out, or learn the decision that won."""
        now = time.time() if now is None else now
        self._conn.execute(
            "UPDATE held SET state = ?, decided_at = ? WHERE id = ? AND state = ?", (TIMED_OUT, now, held_id, PENDING)
        )
        return self.get(held_id)

    def granted(self, service: str, agent: str, method: str, host: str, now: float | None = None) -> Grant | None:
        now = time.time() if now is None else now
        row = self._conn.execute(
            "SELECT granted_by, until, held_id FROM grants WHERE service = ? AND agent = ? AND method = ? "
            "AND host = ? AND until > ? ORDER BY until DESC LIMIT 1",
            (service, agent, method.upper(), host, now),
        ).fetchone()
        return Grant(*row) if row else None


@dataclass(frozen=True, slots=True)
class ApprovalHold:
    """The proxy's approval option (``ProxyConfig.approvals``): which requests wait, in which queue,
    for how long. ``needs`` None: the service's policy in the vault decides (``vault/policy.py``: a
    service set to confirm writes holds its non-safe methods). No secret in it."""

    home: Path
    needs: Needs | None = None
    timeout: float = DEFAULT_TIMEOUT
    poll: float = 0.2
    notify: bool = False
    """Also raise a desktop notification (``notify-send``, where the desktop has it) when a request starts waiting."""


TIMEOUT_ENV = "CLAVIS_APPROVAL_TIMEOUT"


def approval_hold(home: Path) -> ApprovalHold:
    """The hold a proxy for agents is built with: the vault's policy, ``CLAVIS_APPROVAL_TIMEOUT``
    seconds (default 120) to answer."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        timeout = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 24 * 3600:
        raise ApprovalError(f"{TIMEOUT_ENV}={text!r}: give the seconds a person has to answer, e.g. 120")
    return ApprovalHold(home, timeout=timeout, notify=True)


def decide_and_record(queue: Approvals, audit: AuditLog, held_id: str, *, approve: bool, by: str,
                      minutes: int = 0) -> Held:  # fmt: skip
    """A person's decision, and its audit record naming who decided (``source``) and what.

    The proxy's own record of the request follows when it goes out or is refused."""
    held = queue.decide(held_id, approve=approve, by=by, minutes=minutes)
    how = ("for " + str(minutes) + " min" if minutes else "once") if approve else ""
    scheme, _, rest = held.url.partition("://")
    audit.append(source=by, service=held.service, method=held.method, scheme=scheme, host=held.host,
                 path="/" + rest.partition("/")[2], action="approve" if approve else "deny",
                 decision="approved" if approve else "denied",
                 reason=f"request {held.id} of agent {held.agent} {held.state} by {by} {how}".strip())  # fmt: skip
    return held
