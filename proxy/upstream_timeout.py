"""An upstream that does not answer in time gets the agent a clear 504, and an ``error`` record.

mitmproxy has no read timeout for the response it waits on: a hung upstream holds the agent's
connection for as long as the agent waits. So when a request leaves, a timer starts; if no
response head has come when it fires, the flow gets a 504 of ours as if the upstream had sent
it (:func:`~clavis_mcp.proxy.stream_events.answer`: the response hooks run, so it is redacted
and recorded, as ``error`` with reason ``upstream timeout``), and the upstream connection closes.
"""

from __future__ import annotations

import asyncio
import os

from mitmproxy import http

from clavis_mcp.addons.flowmeta import DECISION, REASON
from clavis_mcp.vault.audit.log import ERROR

from .stream_events import answer

DEFAULT_SECONDS = 120.0
ENV_VAR = "CLAVIS_UPSTREAM_TIMEOUT"
_TIMER = "clavis.upstream_timer"


def timeout_seconds(configured: float | None) -> float:
    """``configured``, else ``CLAVIS_UPSTREAM_TIMEOUT``, else the default; ValueError if unusable."""
    if configured is not None:
        return configured
    raw = os.environ.get(ENV_VAR)
    if not raw:
        return DEFAULT_SECONDS
    seconds = float(raw)
    if seconds < 0:
        raise ValueError(f"{ENV_VAR} must be a number of seconds, 0 or more (0: wait forever)")
    return seconds


class UpstreamTimeout:
    def __init__(self, seconds: float = DEFAULT_SECONDS) -> None:
        self._seconds = seconds

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None or self._seconds <= 0:
            return
        flow.metadata[_TIMER] = asyncio.get_running_loop().call_later(self._seconds, self._expire, flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._cancel(flow)

    def _cancel(self, flow: http.HTTPFlow) -> None:
        timer = flow.metadata.pop(_TIMER, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, flow: http.HTTPFlow) -> None:
        flow.metadata.pop(_TIMER, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        message = f"upstream timeout: {flow.request.host} sent no response within {self._seconds:g} s"
        previous = flow.metadata.get(DECISION), flow.metadata.get(REASON)
        flow.metadata[DECISION], flow.metadata[REASON] = ERROR, message
        response = http.Response.make(
            504,
            f"clavis-mcp: {message}; the request may have reached it. Retry later, or raise the proxy's "
            f"upstream timeout ({ENV_VAR}, in seconds)\n",
            {"content-type": "text/plain; charset=utf-8", "connection": "close"},
        )
        if not answer(flow, response):
            flow.metadata[DECISION], flow.metadata[REASON] = previous
