"""httpx's way into the base-URL front of the proxy running in this same process.

The MCP gateway's calls are base-URL requests to the embedded proxy. Sent over loopback, each
one paid for an HTTP client (httpx's connection pool, httpcore, h11), a socket each way and the
front's HTTP parser: about a third of a call's CPU. This transport hands the request to the front
as it is (:meth:`BaseUrlServer.serve_direct`), which judges its head as h11 judges one and runs
the same stages, checks and audit record, and turns the answer back into an httpx response.
What the gateway reads is what a client on a socket reads: the same status, header fields and
body; a body the proxy cut is a read error; and a call the gateway abandons (its timeout, its
download bound) fails and is recorded as given up by the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from .base_url_front import BaseUrlServer, DirectAnswer, DirectRequest


class InProcessTransport(httpx.AsyncBaseTransport):
    def __init__(self, front: BaseUrlServer) -> None:
        self._front = front
        self._serving: dict[asyncio.Task[None], DirectAnswer] = {}  # (the loop keeps only weak references)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        return await self.send(request.method.encode("ascii"), request.url.raw_path, tuple(request.headers.raw),
                               body, request)  # fmt: skip

    async def send(
        self,
        method: bytes,
        target: bytes,
        fields: tuple[tuple[bytes, bytes], ...],
        body: bytes,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """Hand over a request given by its parts, as an ``httpx.Request`` (``request``) would give
        them: the MCP gateway builds its requests' fields itself, without a URL to parse again."""
        direct = DirectRequest(method, target, fields, body)
        answer = DirectAnswer()
        task = asyncio.create_task(self._front.serve_direct(direct, answer), name="clavis in-process request")
        self._serving[task] = answer
        task.add_done_callback(self._finished)
        try:
            status, reason, answered = await answer.head
        except asyncio.CancelledError:
            answer.caller_gone()
            raise
        extensions = {"reason_phrase": reason, "http_version": b"HTTP/1.1"}
        return httpx.Response(status, headers=answered, stream=_Body(answer), extensions=extensions, request=request)

    def _finished(self, task: asyncio.Task[None]) -> None:
        answer = self._serving.pop(task)
        if not answer.head.done():  # the exchange ended without answering (a fault of ours, recorded)
            answer.head.set_exception(httpx.RemoteProtocolError("the proxy ended the request without an answer"))

    async def aclose(self) -> None:
        """Cut every request still being served, as closing a client's connections would: each
        fails and is recorded as given up (the gateway waits for those records)."""
        for answer in list(self._serving.values()):
            answer.caller_gone()


class _Body(httpx.AsyncByteStream):
    def __init__(self, answer: DirectAnswer) -> None:
        self._answer = answer
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while (piece := await self._answer.piece()) is not None:
                yield piece
        except ConnectionResetError as exc:
            raise httpx.ReadError(str(exc)) from None
        except asyncio.CancelledError:
            self._answer.caller_gone()
            raise
        self._ended = True

    async def aclose(self) -> None:
        if not self._ended:
            self._answer.caller_gone()  # read no further: as a client closing its connection
