"""A request body larger than the proxy will buffer is refused (413) before it is read whole.

The body of an intercepted request is held in memory until it is complete: the credential is
injected, and the method and path judged, in the ``request`` hook, which mitmproxy runs only
then, and signing methods hash the body. So instead of streaming an upload past those checks,
its size is bounded: a ``Content-Length`` above the bound is refused as soon as the headers are
read, and a body with a ``Transfer-Encoding`` (whatever a ``Content-Length`` beside it says) is
watched while it arrives and refused when it passes the bound (by the base-URL front after each
chunk it reads, :func:`~clavis_mcp.proxy.stream_events.watch_body`). The refusal goes through
mitmproxy's own error path (:func:`~clavis_mcp.proxy.stream_events.fail`): the client gets 413
with the reason, the audit an ``error`` record, and the connection closes.
"""

from __future__ import annotations

import asyncio
import os

from mitmproxy import http
from mitmproxy.proxy.layers.http._events import ErrorCode

from clavis_mcp.addons.flowmeta import DECISION, REASON
from clavis_mcp.vault.audit.log import REFUSED

from .stream_events import fail, stream_of, watch_body

DEFAULT_BYTES = 100 * 1024 * 1024
ENV_VAR = "CLAVIS_MAX_REQUEST_BYTES"
WATCH_SECONDS = 0.05  # how often a chunked body's size is looked at while it arrives
_WATCH = "clavis.body_watch"


def limit_bytes(configured: int | None) -> int:
    """``configured``, else ``CLAVIS_MAX_REQUEST_BYTES``, else the default; ValueError if unusable."""
    if configured is not None:
        return configured
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return DEFAULT_BYTES
    value = int(raw)
    if value <= 0:
        raise ValueError(f"{ENV_VAR} must be a positive number of bytes")
    return value


def too_large(limit: int, what: str) -> str:
    """Why a body is refused, and what to do."""
    return (
        f"request body too large: {what} is over the proxy's limit of {limit} bytes "
        f"({ENV_VAR}); send a smaller body, or raise the limit"
    )


class RequestBodyLimit:
    def __init__(self, limit: int = DEFAULT_BYTES) -> None:
        self._limit = limit

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        if "transfer-encoding" not in flow.request.headers:  # else the body's length is not the header's
            length = flow.request.headers.get("content-length", "").strip()
            if length.isdigit() and int(length) > self._limit:
                self._refuse(flow, f"its Content-Length of {int(length)} bytes")
            return
        if not watch_body(flow, lambda size: self._check(flow, size)):
            flow.metadata[_WATCH] = asyncio.ensure_future(self._watch(flow))

    def request(self, flow: http.HTTPFlow) -> None:
        self._stop(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._stop(flow)

    async def _watch(self, flow: http.HTTPFlow) -> None:
        while flow.live and flow.error is None:
            stream = stream_of(flow)
            if stream is None:
                return
            if len(stream.request_body_buf) > self._limit:
                self._refuse(flow, f"its chunked body, past {self._limit} bytes so far")
                return
            await asyncio.sleep(WATCH_SECONDS)

    def _check(self, flow: http.HTTPFlow, size: int) -> None:
        if size > self._limit:
            self._refuse(flow, f"its chunked body, past {self._limit} bytes so far")

    def _stop(self, flow: http.HTTPFlow) -> None:
        watch = flow.metadata.pop(_WATCH, None)
        if watch is not None:
            watch.cancel()

    def _refuse(self, flow: http.HTTPFlow, what: str) -> None:
        message = too_large(self._limit, what)
        flow.metadata[DECISION], flow.metadata[REASON] = REFUSED, message
        fail(flow, message, ErrorCode.REQUEST_TOO_LARGE)
