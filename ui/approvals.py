"""The approval queue on the page: the held requests, a person's approve or deny, the live grants.

The queue is the proxy's (``vault/approvals.py``), kept in the vault's store, so the page
sees what any proxy process holds. A decision or a grant's revocation is a POST that the guard
has already checked for the token, the Origin and the CSRF header; it is recorded in the audit
log as the page's (``source`` = ``ui``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.approvals import Approvals, decide_and_record, revoke_and_record
from clavis_mcp.vault.errors import ApprovalError

DECIDED_BY = "ui"
MAX_MINUTES = 24 * 60


class ApprovalDesk:
    def __init__(self, home: Path, vault: Vault | None, lock: threading.Lock) -> None:
        self._queue = Approvals(vault.store if vault is not None else home)
        self._audit = AuditLog.for_vault(vault) if vault is not None else None
        self._lock = lock

    def close(self) -> None:
        self._queue.close()
        if self._audit is not None:
            self._audit.close()

    def pending(self) -> list[dict[str, object]]:
        now = time.time()
        return [{**asdict(h), "remaining": round(h.deadline - now, 1)} for h in self._queue.pending(now)]

    def grants(self) -> list[dict[str, object]]:
        now = time.time()
        return [{**asdict(g), "minutes_left": math.ceil((g.until - now) / 60)} for g in self._queue.grants(now)]

    def decide(self, held_id: str, approve: bool, minutes: int) -> dict[str, object]:
        with self._lock:
            held = decide_and_record(self._queue, self._recorder(), held_id, approve=approve, by=DECIDED_BY,
                                     minutes=minutes)  # fmt: skip
        return asdict(held)

    def revoke(self, held_id: str) -> dict[str, object]:
        with self._lock:
            grant = revoke_and_record(self._queue, self._recorder(), held_id, by=DECIDED_BY)
        return asdict(grant)

    def _recorder(self) -> AuditLog:
        if self._audit is None:
            raise ApprovalError("the page was opened without the vault, so it cannot record a decision")
        return self._audit

    async def list_route(self, request: Request) -> Response:
        pending, grants = await run_in_threadpool(lambda: (self.pending(), self.grants()))
        return JSONResponse({"pending": pending, "grants": grants})

    async def decide_route(self, request: Request) -> Response:
        held_id = request.path_params["held_id"]
        form = await request.form()
        decision = str(form.get("decision", ""))
        try:
            minutes = int(str(form.get("minutes") or 0))
        except ValueError:
            minutes = -1
        if decision not in ("approve", "deny") or not 0 <= minutes <= MAX_MINUTES:
            message = f"send decision=approve or deny, and minutes from 0 to {MAX_MINUTES}"
            return JSONResponse({"error": message}, status_code=400)
        try:
            held = await run_in_threadpool(self.decide, held_id, decision == "approve", minutes)
        except ApprovalError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"decided": held})

    async def revoke_route(self, request: Request) -> Response:
        try:
            grant = await run_in_threadpool(self.revoke, request.path_params["held_id"])
        except ApprovalError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        return JSONResponse({"revoked": grant})


def approvals_html() -> str:
    """The queue's and the grants' frames; ui.js fills them from /approvals.json and posts the decisions.

    "nothing is waiting" comes after the table, so showing or hiding it never moves a row. The
    method is shown as sent (overrides included) beside the one judged, which a grant is keyed on.
    """
    return (
        '<section id="approvals"><h2>Waiting for your approval</h2>'
        '<p class="hint">A request an agent sent that its service\'s policy holds for a person. '
        "Unanswered, it is refused when its time runs out.</p>"
        '<table id="queue" class="records"><thead><tr><th>id</th><th>agent</th><th>service</th><th>request</th>'
        "<th>judged as</th><th>body size</th><th>body</th><th>time left</th><th>decision</th></tr></thead>"
        "<tbody></tbody></table>"
        '<p id="queue-empty" class="empty">nothing is waiting</p>'
        '<p id="queue-message" class="error"></p></section>'
        '<section id="live-grants"><h2>Live grants</h2>'
        '<p class="hint">Approving for some minutes lets that agent\'s requests to that service with that '
        "method through on any path of that host until the time runs out, or until you revoke the grant.</p>"
        '<table id="grants" class="records"><thead><tr><th>agent</th><th>service</th><th>method</th><th>host</th>'
        "<th>minutes left</th><th>approved by</th><th></th></tr></thead><tbody></tbody></table>"
        '<p id="grants-empty" class="empty">no grant is live</p>'
        '<p id="grants-message" class="error"></p></section>'
    )
