"""Requests held for a person's approval: one queue in the vault's store, shared by processes.

The proxy (``addons/approval.py``) puts a request here and waits; the page (``clavis-mcp ui``)
and the CLI (``clavis-mcp approvals``/``approve``/``deny``) read the queue and decide, each in its
own process, through the vault's :class:`~.storage.protocol.Store` (records of kind
``approval`` and ``approval-grant``), so a team server's store shares it as the local SQLite
vault does. A decision is a compare-and-set on the pending record, and a timeout is the same
compare-and-set from the proxy's side, so a request is approved, denied or timed out exactly
once: an approval that loses the race to the deadline is refused with a message, never
half-applied. The writes are ``quiet`` (they leave the change counter, so holding a request does
not make every proxy rebuild its snapshot). Nothing here is secret: the method (as the request
line and its overrides give it), the URL with its query values and a short body preview already
scrubbed by the proxy's redactor, the service and the agent. What an agent chose is stored with
every character outside printable ASCII escaped (:func:`printable`), so no reader's terminal or page
runs them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .audit.log import AuditLog
from .errors import ApprovalError, StoreConflict, VaultNotFound
from .storage.protocol import Batch, Record, Store, Value
from .storage.sqlite import SQLiteStore
from .visible_text import visible

HELD, GRANT = "approval", "approval-grant"
DEFAULT_TIMEOUT = 120.0
KEEP_DECIDED = 3600.0  # a decided request stays listed by id this long after its deadline, then goes
PENDING, APPROVED, DENIED, TIMED_OUT = "pending", "approved", "denied", "timed out"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DANGER = dict.fromkeys(SAFE_METHODS, 0) | {"POST": 1, "PUT": 2, "PATCH": 2}  # DELETE and unknown ones: 3
_FIELDS = ("created", "deadline", "service", "agent", "method", "host", "url", "preview", "state", "decided_by",
           "decided_at", "minutes", "judged", "size")  # fmt: skip


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
    judged: str
    """The method the approval judged and a grant is keyed on (``method`` is what the person is shown)."""
    size: str
    """The body's length as sent, and its content coding if any (``gzip, 60 bytes``); "" without a body."""


@dataclass(frozen=True, slots=True)
class Grant:
    """Requests like an approved one (service, agent, method, host) go out until ``until``."""

    granted_by: str
    until: float
    held_id: str
    """The request whose approval made it: the grant's name in ``clavis-mcp approvals`` and ``revoke-grant``."""
    service: str
    agent: str
    method: str
    host: str


# (service, agent, method) -> does a person have to approve? The method is the most dangerous one the
# request names; "*" (overrides that cannot be read) stands for any, so it must be asked as the strictest.
Needs = Callable[[str, str, str], bool]


def needs_for(mode: str) -> Needs:
    """A policy as a predicate: ``none``, ``writes`` (non-safe methods) or ``all``."""
    if mode == "none":
        return lambda service, agent, method: False
    if mode == "writes":
        return lambda service, agent, method: method.upper() not in SAFE_METHODS
    if mode == "all":
        return lambda service, agent, method: True
    raise ValueError(f"approval policy {mode!r}: use none, writes or all")


def most_dangerous(methods: Iterable[str]) -> str:
    """Of the methods a request names (its line first, then its overrides), the one a person must
    judge: a write over a read, DELETE or a method not known here over the other writes."""
    return max((m.upper() for m in methods), key=lambda m: _DANGER.get(m, 3))


def printable(text: str) -> str:
    """``text`` as :func:`~vault.visible_text.visible` shows it (everything but printable ASCII
    escaped, as ``\\x1b``, ``\\u202e``): agent-chosen text that a terminal or a page shows as it
    is, nothing it runs or hides, and as the MCP client's question shows it."""
    return visible(text)


def _held(record: Record) -> Held:
    f = record.fields
    values = [f.get(name) for name in _FIELDS]
    values[-2:] = values[-2] or f.get("method"), values[-1] or ""  # a request held before these were stored
    return Held(record.key, *values)  # type: ignore[arg-type]


def _grant_key(service: str, agent: str, method: str, host: str) -> str:
    return "\n".join((service, agent, method.upper(), host.lower()))


def _grant(record: Record) -> Grant:
    service, agent, method, host = record.key.split("\n")
    f = record.fields
    return Grant(str(f["granted_by"]), float(f["until"] or 0), str(f["held_id"]), service, agent, method, host)


class Approvals:
    """The queue over a vault's store (``vault.store``); safe to share between threads.

    Given a home folder instead, it opens that local vault's store (no key needed: nothing
    here is sealed) and closes it with :meth:`close`."""

    def __init__(self, store: Store | Path) -> None:
        if isinstance(store, Path):
            db = store / "vault.db"
            if not db.exists():
                raise VaultNotFound(f"no clavis-mcp home at {store} (no vault); create one with: clavis-mcp init")
            self._store: Store = SQLiteStore.open(db)
            self._owned = True
        else:
            self._store, self._owned = store, False

    def close(self) -> None:
        if self._owned:
            self._store.close()

    def hold(self, *, service: str, agent: str, method: str, host: str, url: str, preview: str,
             timeout: float, judged: str | None = None, size: str = "", now: float | None = None) -> Held:  # fmt: skip
        """Queue a request; ``method`` is what the person is shown (e.g. ``POST (X-HTTP-Method-Override:
        DELETE)``), ``judged`` the method decided on (default: ``method``). Text is stored printable."""
        now = time.time() if now is None else now
        fields: dict[str, Value] = {
            "created": now, "deadline": now + timeout, "service": printable(service), "agent": printable(agent),
            "method": printable(method), "host": host, "url": printable(url), "preview": printable(preview),
            "state": PENDING, "decided_by": None, "decided_at": None, "minutes": None,
            "judged": printable((judged or method).upper()), "size": printable(size),
        }  # fmt: skip
        with self._store.atomic() as batch:
            self._prune(batch, now)
            while True:
                held_id = os.urandom(4).hex()
                if batch.get(HELD, held_id) is None:
                    break
            batch.put(HELD, held_id, fields, expect=0, quiet=True)
        return self.get(held_id)

    def get(self, held_id: str) -> Held:
        with self._store.read() as batch:
            record = batch.get(HELD, held_id)
        if record is None:
            raise ApprovalError(f"no held request {held_id!r}: `clavis-mcp approvals` lists the waiting ones")
        return _held(record)

    def pending(self, now: float | None = None) -> list[Held]:
        """Requests waiting for a decision, oldest first (those past their deadline are left out)."""
        now = time.time() if now is None else now
        with self._store.read() as batch:
            found = [_held(r) for r in batch.records(HELD)]
        return sorted((h for h in found if h.state == PENDING and h.deadline > now), key=lambda h: h.created)

    def decide(self, held_id: str, *, approve: bool, by: str, minutes: int = 0, now: float | None = None) -> Held:
        """Approve (once, or like requests for ``minutes``) or deny a pending request: a
        compare-and-set on its record, so of two deciders (or a decider and the deadline) one wins."""
        now = time.time() if now is None else now
        if minutes < 0:
            raise ApprovalError("minutes must be 0 (this request only) or more")
        try:
            with self._store.atomic() as batch:
                record = batch.get(HELD, held_id)
                if record is None:
                    raise ApprovalError(f"no held request {held_id!r}: `clavis-mcp approvals` lists the waiting ones")
                held = _held(record)
                if held.state != PENDING:
                    raise _already(held)
                if held.deadline <= now:
                    raise ApprovalError(
                        f"request {held_id} waited too long and was refused; the agent may send it again"
                    )
                fields: dict[str, Value] = dict(record.fields)
                fields.update(state=APPROVED if approve else DENIED, decided_by=by, decided_at=now,
                              minutes=minutes if approve else None)  # fmt: skip
                batch.put(HELD, held_id, fields, expect=record.version, quiet=True)
                if approve and minutes:
                    key = _grant_key(held.service, held.agent, held.judged, held.host)
                    grant: dict[str, Value] = {"until": now + minutes * 60, "granted_by": by, "held_id": held_id}
                    batch.put(GRANT, key, grant, quiet=True)
        except StoreConflict:  # another process decided between our read and our write
            raise _already(self.get(held_id)) from None
        return self.get(held_id)

    def expire(self, held_id: str, now: float | None = None) -> Held:
        """The proxy's side of the race: time a pending request out, or learn the decision that won."""
        now = time.time() if now is None else now
        try:
            with self._store.atomic() as batch:
                record = batch.get(HELD, held_id)
                if record is not None and record.fields.get("state") == PENDING:
                    fields: dict[str, Value] = {**record.fields, "state": TIMED_OUT, "decided_at": now}
                    batch.put(HELD, held_id, fields, expect=record.version, quiet=True)
        except StoreConflict:
            pass  # a decision came first: it stands
        return self.get(held_id)

    def granted(self, service: str, agent: str, method: str, host: str, now: float | None = None) -> Grant | None:
        now = time.time() if now is None else now
        with self._store.read() as batch:
            record = batch.get(GRANT, _grant_key(service, agent, method, host))
        if record is None or not float(record.fields["until"] or 0) > now:
            return None
        return _grant(record)

    def grants(self, now: float | None = None) -> list[Grant]:
        """The live approve-for-N-minutes grants, the soonest to end first."""
        now = time.time() if now is None else now
        with self._store.read() as batch:
            found = [_grant(r) for r in batch.records(GRANT)]
        return sorted((g for g in found if g.until > now), key=lambda g: g.until)

    def revoke_grant(self, held_id: str, now: float | None = None) -> Grant:
        """End the live grant that approving ``held_id`` for a while made: like requests wait again
        (one that already read the grant goes on)."""
        now = time.time() if now is None else now
        with self._store.atomic() as batch:
            for record in batch.records(GRANT):
                grant = _grant(record)
                if grant.held_id == held_id and grant.until > now:
                    batch.delete(GRANT, record.key, quiet=True)
                    return grant
        raise ApprovalError(f"no live grant from request {held_id!r}: `clavis-mcp approvals` lists them")

    @staticmethod
    def _prune(b: Batch, now: float) -> None:
        """Drop requests decided long ago and grants that ran out, so the queue stays small."""
        for record in b.records(HELD):
            if float(record.fields.get("deadline") or 0) + KEEP_DECIDED < now:
                b.delete(HELD, record.key, quiet=True)
        for record in b.records(GRANT):
            if float(record.fields.get("until") or 0) < now:
                b.delete(GRANT, record.key, quiet=True)


def _already(held: Held) -> ApprovalError:
    by = f" by {held.decided_by}" if held.decided_by else ""
    return ApprovalError(f"request {held.id} was already {held.state}{by}")


@dataclass(frozen=True, slots=True)
class ApprovalHold:
    """The proxy's approval option (``ProxyConfig.approvals``): which requests wait, for how long.
    The queue is the vault's store. ``needs`` None: the service's policy in the vault decides
    (``vault/policy.py``: ``approvals`` / ``approvals:<agent>``, or confirm writes). ``elicited``:
    given a request's call id (``CALL_HEADER``, set only by the MCP gateway), whether the user
    already approved it by elicitation, so it is not asked twice. No secret in it."""

    home: Path
    needs: Needs | None = None
    timeout: float = DEFAULT_TIMEOUT
    poll: float = 0.2
    notify: bool = False
    """Also raise a desktop notification (``notify-send``, where the desktop has it) when a request starts waiting."""
    elicited: Callable[[str], bool] | None = None


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
    audit.append(source=by, service=held.service, method=held.judged, scheme=scheme, host=held.host,
                 path="/" + rest.partition("/")[2], action="approve" if approve else "deny",
                 decision="approved" if approve else "denied",
                 reason=f"request {held.id} of agent {held.agent} {held.state} by {by} {how}".strip())  # fmt: skip
    return held


def revoke_and_record(queue: Approvals, audit: AuditLog, held_id: str, *, by: str) -> Grant:
    """End a grant early (:meth:`Approvals.revoke_grant`), audited with who did (``source``)."""
    grant = queue.revoke_grant(held_id)
    reason = f"grant from request {held_id} for agent {grant.agent} revoked by {by}"
    audit.append(source=by, service=grant.service, method=grant.method, host=grant.host, action="grant-revoke",
                 decision="revoked", reason=reason)  # fmt: skip
    return grant
