"""Hand HTTP events to the stream of a live flow from outside mitmproxy's hooks.

A hook can answer a flow only while mitmproxy waits on it. A proxy-side timeout (the upstream
never answers) or a bound (an upload too large to buffer) must act between hooks, yet let
mitmproxy's layers stay in charge of every byte the client receives. mitmproxy routes the
``Wakeup`` of a command back to the layer that asked for it; so each HTTP layer on the way to
the flow's stream (through a CONNECT tunnel and its TLS layers) is told that a wakeup of ours
comes from the child leading there, and the innermost one that it comes from a one-shot layer
yielding the events we hand it, as if the upstream had sent them.

A flow served by the base-URL front (:mod:`.base_url_front`) has no mitmproxy stream: the front
registers it here (:func:`serve_by_front`), and the same calls reach the front instead, so the
stages that act between hooks work under either front unchanged.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

from mitmproxy import ctx, http
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import HttpLayer, HttpStream, ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    HttpEvent,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)

Route = list[tuple[HttpLayer, Any]]  # each HTTP layer down to the flow's, and the child leading on
_pending: set[asyncio.Future[None]] = set()


class FrontExchange(Protocol):
    """What the base-URL front offers for a flow it serves."""

    def answer(self, response: http.Response) -> bool: ...
    def fail(self, message: str, code: ErrorCode) -> bool: ...
    def watch_body(self, check: Callable[[int], None]) -> None: ...


_front: weakref.WeakKeyDictionary[http.HTTPFlow, FrontExchange] = weakref.WeakKeyDictionary()


def serve_by_front(flow: http.HTTPFlow, exchange: FrontExchange) -> None:
    _front[flow] = exchange


def watch_body(flow: http.HTTPFlow, check: Callable[[int], None]) -> bool:
    """Have the base-URL front call ``check`` with the request body's size so far after each
    chunk it reads; False for a flow of mitmproxy's (watch :func:`stream_of` instead)."""
    exchange = _front.get(flow)
    if exchange is not None:
        exchange.watch_body(check)
    return exchange is not None


class _OneShot(layer.Layer):
    def __init__(self, context: Any, made: Sequence[HttpEvent], close: Any) -> None:
        super().__init__(context)
        self._made, self._close = made, close

    def _handle_event(self, event: events.Event) -> Generator[commands.Command, Any]:
        for made in self._made:
            yield ReceiveHttp(made)
        if self._close is not None:
            yield commands.CloseConnection(self._close)


def answer(flow: http.HTTPFlow, response: http.Response) -> bool:
    """Give the client ``response`` for ``flow`` (the response hooks run on it, as on any), and
    close the upstream connection the real answer would have come on. False if the flow is gone."""
    if (exchange := _front.get(flow)) is not None:
        return exchange.answer(response)
    body = response.raw_content or b""

    def made(sid: int) -> list[HttpEvent]:
        return [ResponseHeaders(sid, response, False), ResponseData(sid, body), ResponseEndOfMessage(sid)]

    return _hand(flow, made, flow.server_conn)


def fail(flow: http.HTTPFlow, message: str, code: ErrorCode) -> bool:
    """Fail ``flow`` as mitmproxy fails one (the ``error`` hook runs; HTTP/1 clients get the
    status of ``code`` with ``message``, and the connection is closed)."""
    if (exchange := _front.get(flow)) is not None:
        return exchange.fail(message, code)

    def made(sid: int) -> list[HttpEvent]:
        return [ResponseProtocolError(sid, message, code)]

    return _hand(flow, made, None)


def stream_of(flow: http.HTTPFlow) -> HttpStream | None:
    found = _find(flow)
    return found[1][1] if found is not None else None


def _hand(flow: http.HTTPFlow, make: Callable[[int], list[HttpEvent]], close: Any) -> bool:
    found = _find(flow)
    if found is None:
        return False
    handler, (route, stream) = found
    nudge = commands.RequestWakeup(0)  # never run: its Wakeup goes down the layers registered for it
    *outer, (inner, _) = route
    for http_layer, leads_on in outer:
        http_layer.command_sources[nudge] = leads_on
    inner.command_sources[nudge] = _OneShot(inner.context.fork(), make(stream.stream_id), close)
    task = asyncio.ensure_future(handler.server_event(events.Wakeup(nudge)))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    return True


def _find(flow: http.HTTPFlow) -> tuple[Any, tuple[Route, HttpStream]] | None:
    server = ctx.master.addons.get("proxyserver")
    handler = server.connections.get(flow.client_conn.id) if server is not None else None
    found = _route_to(handler.layer, flow) if handler is not None else None
    return (handler, found) if found is not None else None


def _route_to(top: Any, flow: http.HTTPFlow, depth: int = 0) -> tuple[Route, HttpStream] | None:
    current = top
    while current is not None and depth < 64:
        depth += 1
        if isinstance(current, HttpLayer):
            for stream in [*current.streams.values(), *current.connections.values()]:
                if not isinstance(stream, HttpStream):
                    continue
                if stream.flow is flow:
                    return [(current, stream)], stream
                inner = stream.child_layer
                found = _route_to(inner, flow, depth) if inner is not None else None
                if found is not None:
                    return [(current, stream), *found[0]], found[1]
            return None
        current = _child(current)
    return None


def _child(current: Any) -> Any:
    """The layer under ``current``: its ``child_layer`` or ``layer`` (NextLayer), or the layer whose
    ``handle_event`` it delegates to (a proxy mode such as HttpProxy keeps no other reference)."""
    found = getattr(current, "child_layer", None) or getattr(current, "layer", None)
    if found is None:
        delegate = getattr(getattr(current, "_handle_event", None), "__self__", None)
        found = delegate if delegate is not current else None
    return found
