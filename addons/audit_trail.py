"""Audit trail: one record per request decision, and no request without its record.

Decisions recorded (a closed set, docs/audit.md): a request ``injected``, ``passed`` through
(no service, passthrough host) or ``refused`` (with the reason), an ``error`` (the flow failed:
TLS, DNS, connect, reset, timeout, the client gave up; the reason names which, see
``failures.py``), and tunnels refused or passed through opaquely at CONNECT. A failure always
overrides the decision taken before it: a request whose credential was injected but that got
no answer is an ``error``, not an ``injected`` success. The log is checked before a request or
an opaque tunnel leaves; if the final record cannot be written the response is withheld and
replaced by an error (fail closed). The record id and redaction count go back to the client in
response headers, and, for a call_service request (which names itself with ``CALL_HEADER``),
in process to the gateway with the whole record, so the tool reports what the log says even
when the body was streamed before the record existed or the engine answered a failure itself.
Runs last, so every other addon has had its say.

Writing a record is one append (about 0.1 ms: a locked write and a sealed checkpoint in the
lock file, no fsync, no vault write but the rare high-water mark), done on the event loop:
handing it to a worker thread cost more in thread switches and GIL contention than it saved
(16 concurrent clients: 458 req/s threaded, 853 inline).

No agent's token is recorded: base-URL mode puts it in URLs (``/a/<token>/...``), and a client
that sends such a URL to the wrong place, or an agent that puts its token elsewhere in a URL,
would write it into the path or the reason of a record that is kept and replicated. Given the
current tokens (``tokens``), every one is replaced in those fields, in any letter case.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from mitmproxy import http

from clavis_mcp.vault import AuditLog, AuditWriteError, Vault
from clavis_mcp.vault.audit.log import ERROR, ID, PASSED, REFUSED
from clavis_mcp.vault.proxy_config import OnRecorded, Tokens
from clavis_mcp.vault.proxy_headers import AUDIT_ID_HEADER, CALL_HEADER, REDACTIONS_HEADER

from .failures import classify
from .flowmeta import CLIENT, DECISION, DESTINATION, REASON, REDACTIONS, SERVICE, STARTED, flow_tokens, refuse

ID_FIELD, COUNT_FIELD = AUDIT_ID_HEADER.encode(), REDACTIONS_HEADER.encode()
OURS = frozenset({ID_FIELD.lower(), COUNT_FIELD.lower()})  # set in one pass over the fields, replacing any copy
CALL = "clavis.call"  # the call_service id the request carried (its header is stripped before egress)
AUDIT_ID = "clavis.audit_id"  # the id of the flow's record, once written
AGENT_KEY_MARK = "[REDACTED:agent-key]"


class AuditTrail:
    def __init__(
        self,
        log: AuditLog,
        on_recorded: OnRecorded | None = None,
        tokens: Tokens | None = None,
        vault: Vault | None = None,
    ) -> None:
        self._log = log
        self._on_recorded = on_recorded
        self._tokens = tokens
        self._vault = vault  # given: tokens kept in it are read as of the flow's snapshot (flowmeta.flow_tokens)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A refused tunnel, or one passed through opaquely: no inner request will be recorded."""
        if flow.response is not None and flow.response.status_code >= 400:
            try:
                self._record(flow)
            except AuditWriteError:
                pass  # already refused; nothing goes through to withhold
        elif flow.metadata.get(DECISION) == PASSED:
            try:
                self._record(flow)
            except AuditWriteError as exc:
                refuse(flow, 503, str(exc))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Note call_service's id before the injection stage strips every internal header."""
        if self._on_recorded is not None and (call := flow.request.headers.get(CALL_HEADER)):
            flow.metadata[CALL] = call

    def request(self, flow: http.HTTPFlow) -> None:
        """Refuse before anything leaves if the record of it could not be written afterwards."""
        goes_out = flow.metadata.get(SERVICE) or flow.metadata.get(DECISION) == PASSED
        if flow.response is None and goes_out:
            try:
                self._log.check_writable()
            except AuditWriteError as exc:
                refuse(flow, 503, str(exc))

    def response(self, flow: http.HTTPFlow) -> None:
        try:
            audit_id = self._record(flow)
        except AuditWriteError as exc:
            if flow.metadata.get(DECISION) != REFUSED:
                refuse(flow, 502, str(exc))  # withhold what came back: no unrecorded use
            return
        assert flow.response is not None
        headers = flow.response.headers
        ours = ((ID_FIELD, audit_id.encode()), (COUNT_FIELD, str(flow.metadata.get(REDACTIONS, 0)).encode()))
        headers.fields = (*[field for field in headers.fields if field[0].lower() not in OURS], *ours)

    def error(self, flow: http.HTTPFlow) -> None:
        """The flow failed: record what happened, overriding whatever was decided before."""
        if AUDIT_ID in flow.metadata:
            return  # recorded at its response (a streamed body cut short afterwards): one record per decision
        if not (flow.metadata.get(DECISION) == ERROR and flow.metadata.get(REASON)):  # a stage said why already
            failure = classify(flow.error.msg if flow.error else "", flow.metadata.get(DECISION))
            flow.metadata[DECISION], flow.metadata[REASON] = failure.decision, failure.reason
        try:
            self._record(flow)
        except AuditWriteError:
            pass  # the flow already failed; nothing reached the client to withhold

    def _record(self, flow: http.HTTPFlow) -> str:
        request, response, get = flow.request, flow.response, flow.metadata.get
        # The destination a stage settled on; the request's own (three properties, each one decoded) only without it.
        scheme, host, port = get(DESTINATION) or (request.scheme, request.host, request.port)
        method = request.method
        started = get(STARTED)
        tokens = self._current_tokens(flow)
        fields: dict[str, Any] = {  # a literal: dict(name=...) built the keywords and then copied them
            "source": get(CLIENT, "unauthenticated"),
            "service": get(SERVICE),
            "method": method,
            "scheme": scheme,
            "host": host,
            "port": port,
            "path": _without_tokens(request.path, tokens) if method != "CONNECT" else None,
            "status": response.status_code if response else None,
            "bytes": _body_bytes(flow),
            "duration_ms": round((time.monotonic() - started) * 1000, 2) if started else None,
            "decision": get(DECISION, PASSED),
            "reason": _without_tokens(get(REASON), tokens),
            "redactions": get(REDACTIONS),
        }
        audit_id = self._log.append(**fields)
        flow.metadata[AUDIT_ID] = audit_id
        if self._on_recorded is not None and (call := get(CALL)):
            self._on_recorded(call, {**fields, ID: audit_id})
        return audit_id

    def _current_tokens(self, flow: http.HTTPFlow) -> Iterable[str]:
        if self._tokens is None:
            return ()
        if self._vault is None:
            return self._tokens().values()
        return flow_tokens(flow, self._vault, self._tokens).values()


def _without_tokens(text: str | None, tokens: Iterable[str]) -> str | None:
    """``text`` with every agent token in it, in any letter case, replaced by a mark."""
    if not text:
        return text
    lowered = text.lower()  # once per record, not once per agent
    for token in tokens:
        if token and token.lower() in lowered:
            text = re.sub(re.escape(token), AGENT_KEY_MARK, text, flags=re.IGNORECASE)
    return text


def _body_bytes(flow: http.HTTPFlow) -> int | None:
    """Bytes of the body the client was sent: a streamed body is counted as it passed
    (``redact.py`` keeps the count), a buffered one is measured."""
    response = flow.response
    if response is None or flow.error:
        return None
    streamed = getattr(response.stream, "sent_bytes", None)
    if isinstance(streamed, int):
        return streamed
    return len(response.raw_content or b"")
