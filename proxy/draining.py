"""Stopping without losing what is in flight: finish it, or refuse it, and record it either way.

On SIGTERM or SIGINT the standalone proxy stops taking requests (a new one is refused, 503, and
recorded) and waits up to a grace period for the ones in flight to be answered and recorded as
usual. Those still waiting then are failed through mitmproxy's error path (the client gets 502
saying the proxy stopped, the audit an ``error`` record that says the request may have reached
the upstream) before the engine shuts down, so no request that went out is left unrecorded.
"""

from __future__ import annotations

import asyncio
import os
import time

from mitmproxy import http
from mitmproxy.proxy.layers.http._events import ErrorCode

from clavis_mcp.addons.flowmeta import DECISION, REASON, refuse
from clavis_mcp.vault.audit.log import ERROR

from .stream_events import fail

GRACE_SECONDS = float(os.environ.get("CLAVIS_STOP_GRACE_SECONDS") or 10.0)  # how long in-flight requests get
STOPPED = "the proxy was stopped before the upstream answered; the request may have reached it"


class Draining:
    def __init__(self) -> None:
        self._in_flight: set[http.HTTPFlow] = set()
        self.draining = False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        if self.draining:
            refuse(flow, 503, "the clavis-mcp proxy is stopping; retry once it runs again")
            return
        self._in_flight.add(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._in_flight.discard(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._in_flight.discard(flow)

    async def drain(self, grace: float = GRACE_SECONDS) -> int:
        """Refuse new requests; wait up to ``grace`` seconds for those in flight, then fail the
        rest (each recorded); return how many had to be failed."""
        self.draining = True
        deadline = time.monotonic() + grace
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        failed = 0
        for flow in list(self._in_flight):
            flow.metadata[DECISION], flow.metadata[REASON] = ERROR, STOPPED
            if fail(flow, f"clavis-mcp: {STOPPED}", ErrorCode.GENERIC_SERVER_ERROR):
                failed += 1
            else:
                self._in_flight.discard(flow)
        settle = time.monotonic() + 2.0  # the error hooks (and their records) run on the loop
        while self._in_flight and time.monotonic() < settle:
            await asyncio.sleep(0.02)
        return failed
