"""Hold a request that needs a person's approval until one decides, or refuse it when time runs out.

Reads ``ProxyConfig.approvals`` (:class:`~vault.approvals.ApprovalHold`): its policy says which
requests wait (by service, agent and method); by default the service's policy in the vault does
(``approvals`` / ``approvals:<agent>``: none, writes or all; a service set to confirm writes holds
its non-safe methods). The method judged is the most dangerous of the request line's and of every
override the request carries (``X-HTTP-Method-Override`` and friends, ``_method`` fields: servers
obey them, :mod:`vault.method_overrides`), so a GET that says DELETE waits as a write; one whose
overrides cannot be read is judged as ``*``, a write. A call the MCP user already approved by
elicitation (its ``CALL_HEADER`` id, which only the gateway sets, is one ``ApprovalHold.elicited``
knows) is not asked again. A waiting request goes into the shared queue (:mod:`vault.approvals`,
in the vault's store) showing what will be sent: the method with its overrides (``POST
(X-HTTP-Method-Override: DELETE)``), the URL with its query values, the body's length, and its
head and tail decoded from its content coding (bounded), with what lies between counted and
runs of one character shown once with their length, so padding (spaces, blank or invisible
letters, dashes) cannot push the content out of sight; the URL and the body scrubbed of the
service's secrets. The page and the CLI show it and decide. Approved: the request goes on to
injection, with who approved it in its audit record. Denied, or no answer by the deadline: refused
(403) with a reason the agent can read, and nothing is sent (fail closed). A request like one
approved "for N minutes" goes on without waiting.

Runs after the policy, budget and expiry stages (a person is never asked about a request that
would be refused anyway) and before the OAuth refresh and the injection.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from collections.abc import Awaitable, Callable

from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import APPROVED, DENIED, ApprovalHold, Approvals, Held, printable
from clavis_mcp.vault.errors import DecodedTooLarge, DecodeError
from clavis_mcp.vault.method_overrides import UNREADABLE, judged_method
from clavis_mcp.vault.policy import policies_as_of
from clavis_mcp.vault.proxy_headers import CALL_HEADER
from clavis_mcp.vault.redaction.decoding import BoundedDecoder, is_identity
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.service import ServiceRedactors

from .flowmeta import CLIENT, DESTINATION, REASON, SERVICE, flow_snapshot, is_settled, refuse

PREVIEW_CHARS = 300  # half for the body's head, half for its tail
SCANNED_BYTES = 64 * 1024  # of the decoded body: the decoder's output bound (SECURITY-CASES 44)
_BLANKS = re.compile(r"\s{2,}")
# 8 or more of one character, shown once with its count: padding. Not letters or digits, whose
# runs carry meaning an approver must read as sent (an amount of 100000000 is not "10[x8]").
_RUN = re.compile(r"([^0-9A-Za-z])\1{7,}", re.DOTALL)


class HoldForApproval:
    request: Callable[[http.HTTPFlow], Awaitable[None]]  # a hook only when a request may wait

    def __init__(self, vault: Vault, hold: ApprovalHold | None) -> None:
        self._vault = vault
        self._hold = hold
        self._redactors: ServiceRedactors | None = None
        if hold is not None:  # without a hold none waits: no hook, and no coroutine made per request for it
            self.request = self._request

    async def _request(self, flow: http.HTTPFlow) -> None:
        hold = self._hold
        service = flow.metadata.get(SERVICE)
        if hold is None or is_settled(flow) or not service:
            return
        agent = str(flow.metadata.get(CLIENT, "unauthenticated"))
        if not self._needs(flow, hold, service, agent, UNREADABLE):
            return  # nothing of this service's waits for this agent: its overrides need no reading
        shown, judged = requested_method(flow.request)
        if not self._needs(flow, hold, service, agent, judged):
            return
        call = flow.request.headers.get(CALL_HEADER)
        if call and hold.elicited is not None and hold.elicited(call):
            flow.metadata[REASON] = "approved by the user when the MCP client asked (elicitation)"
            return
        await self._held(flow, hold, Approvals(self._vault.store), service, agent, shown, judged)

    async def _held(self, flow: http.HTTPFlow, hold: ApprovalHold, queue: Approvals, service: str, agent: str,
                    shown: str, judged: str) -> None:  # fmt: skip
        scheme, host, port = flow.metadata.get(DESTINATION, (flow.request.scheme, flow.request.host, flow.request.port))
        grant = await asyncio.to_thread(queue.granted, service, agent, judged, host)
        if grant is not None:
            flow.metadata[REASON] = f"approved by {grant.granted_by} (like request {grant.held_id}, for a while)"
            return
        default = {"https": 443, "http": 80}.get(scheme)
        redactor = self._redactor(flow, service)
        path = redactor.redact(flow.request.data.path)[0].decode("utf-8", "backslashreplace")
        url = f"{scheme}://{host}{'' if port == default else f':{port}'}{path}"
        size, preview = _body(flow.request, redactor)
        held = await asyncio.to_thread(queue.hold, service=service, agent=agent, method=shown, judged=judged,
                                       host=host, url=url, size=size, preview=preview,
                                       timeout=hold.timeout)  # fmt: skip
        if hold.notify:
            await notify(held)
        decided = await self._wait(queue, held, hold)
        if decided.state == APPROVED:
            how = f" for {decided.minutes} min" if decided.minutes else ""
            flow.metadata[REASON] = f"approved by {decided.decided_by}{how} (request {held.id})"
        elif decided.state == DENIED:
            refuse(flow, 403, f"{decided.decided_by} denied this request (approval {held.id}); it was not sent")
        else:
            where = "in `clavis-mcp ui` or with `clavis-mcp approve`"
            refuse(flow, 403, f"this request waited {hold.timeout:g} s for a person's approval (approval {held.id}, "
                   f"{where}) and got no answer; it was not sent")  # fmt: skip

    async def _wait(self, queue: Approvals, held: Held, hold: ApprovalHold) -> Held:
        """Poll the shared queue until a decision, or time the request out (whichever wins the row)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold.timeout
        while loop.time() < deadline:
            await asyncio.sleep(min(hold.poll, max(0.0, deadline - loop.time())))
            current = await asyncio.to_thread(queue.get, held.id)
            if current.state in (APPROVED, DENIED):
                return current
        return await asyncio.to_thread(queue.expire, held.id)

    def _needs(self, flow: http.HTTPFlow, hold: ApprovalHold, service: str, agent: str, method: str) -> bool:
        if hold.needs is not None:
            return hold.needs(service, agent, method)
        policy = policies_as_of(self._vault, flow_snapshot(flow, self._vault)).get(service)
        return policy is not None and policy.needs_approval(agent, method)

    def _redactor(self, flow: http.HTTPFlow, service: str) -> Redactor:
        self._redactors = self._redactors or ServiceRedactors(self._vault)
        return self._redactors.for_service(flow_snapshot(flow, self._vault), service).values


def requested_method(request: http.Request) -> tuple[str, str]:
    """What a person is shown of the method and the method judged (:func:`judged_method`)."""
    return judged_method(
        request.method, request.headers.items(multi=True), request.path.partition("?")[2],
        request.headers.get("content-type", ""), request.headers.get("content-encoding", ""), request.raw_content,
    )  # fmt: skip


def _body(request: http.Request, redactor: Redactor) -> tuple[str, str]:
    """The body's length as sent (and its content coding), and a preview: decoded (at most
    :data:`SCANNED_BYTES`), scrubbed, whitespace runs collapsed, everything but printable ASCII
    escaped (:func:`_preview`). A body that cannot be decoded is named, not shown."""
    raw = request.raw_content or b""
    if not raw:
        return "", ""
    coding = request.headers.get("content-encoding", "").strip().lower()
    size = f"{len(raw)} bytes" if is_identity(coding) else f"{coding}, {len(raw)} bytes"
    size = printable(redactor.redact(size.encode())[0].decode("utf-8", "replace"))[:PREVIEW_CHARS]
    pieces: list[bytes] = []
    cut = False
    try:
        for piece in BoundedDecoder(coding).decode(raw, SCANNED_BYTES):
            pieces.append(piece)
    except DecodedTooLarge:
        cut = True  # the first SCANNED_BYTES came out
    except DecodeError:
        return size, f"encoded body ({size}), not shown"
    clean, _ = redactor.redact(b"".join(pieces))
    return size, _preview(_BLANKS.sub(" ", clean.decode("utf-8", "replace")), cut)


def _preview(text: str, cut: bool) -> str:
    """``text`` escaped, each run of 8 or more of one character written once with its count
    (``-[x300]``, ``\\u2800[x400]``), and at most :data:`PREVIEW_CHARS` of that: the head and
    the tail, with the count of characters between. A ``cut`` text (the body went on past the
    bound) shows no tail: its end may be the first part of a secret the scrubber did not see whole."""
    shown: list[tuple[str, int]] = []  # what each piece shows, and how many characters of ``text`` it stands for
    start = 0
    for run in _RUN.finditer(text):
        shown += [(printable(c), 1) for c in text[start : run.start()]]
        shown.append((f"{printable(run[1])}[x{len(run[0])}]", len(run[0])))
        start = run.end()
    shown += [(printable(c), 1) for c in text[start:]]
    if not cut and sum(len(s) for s, _ in shown) <= PREVIEW_CHARS:
        return "".join(s for s, _ in shown)
    i = _fitting(shown, PREVIEW_CHARS if cut else PREVIEW_CHARS // 2)
    head = "".join(piece for piece, _ in shown[:i])
    if cut:
        return f"{head}... (the rest not shown: the body decodes to more than {SCANNED_BYTES // 1024} KiB)"
    j = len(shown) - _fitting(shown[::-1], PREVIEW_CHARS // 2)
    tail = "".join(piece for piece, _ in shown[j:])
    return f"{head}... ({sum(n for _, n in shown[i:j])} characters not shown) ...{tail}"


def _fitting(shown: list[tuple[str, int]], budget: int) -> int:
    """How many of the first pieces of ``shown`` fit ``budget`` characters together."""
    used = count = 0
    for piece, _ in shown:
        used += len(piece)
        if used > budget:
            break
        count += 1
    return count


async def notify(held: Held) -> None:
    """A desktop notification that a request waits, where ``notify-send`` exists; never blocks the
    request and never fails it. Agent-chosen text is escaped: notification servers read markup."""
    program = shutil.which("notify-send")
    if program is None:
        return
    body = html.escape(f"{held.agent} -> {held.service}: {held.method} {held.url} (approval {held.id})")
    try:
        process = await asyncio.create_subprocess_exec(
            program, "--app-name=clavis-mcp", "clavis-mcp: a request waits for your approval", body,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    except OSError:
        return
    _notifiers.add(task := asyncio.create_task(process.wait()))
    task.add_done_callback(_notifiers.discard)


_notifiers: set[asyncio.Task[int]] = set()  # reaped in the background
