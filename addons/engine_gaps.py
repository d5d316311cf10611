"""The parts of a response that mitmproxy 12 relays past every hook, brought back in reach.

- **WebSocket control frames.** The engine forwards a ping or pong payload and a close reason
  as it received them, with no hook in between (and logs a ping's payload at INFO). Here the
  engine's connection to the upstream hands each control frame to the scrubber registered for
  that connection (:func:`scrub_control_frames`) before the engine logs or forwards it.
- **HTTP/1 trailers.** The engine raises on a chunked body that ends with trailer fields,
  which cuts the response short for an HTTP/1.1 client and resets an HTTP/2 client's stream.
  The chunked reader here ends such a body without them: trailers read over HTTP/1 (from an
  upstream, or from a client) are dropped, never forwarded. Trailers over HTTP/2 reach the
  ``response`` hook, which scrubs them.
- **Bytes after a ``101`` to another protocol than WebSocket.** The engine turns the upstream
  connection into a raw pipe as soon as it reads the ``101``, before any hook, and the bytes that
  follow reach the flow even after the ``response`` hook refused it (the engine then crashes with
  them in its error log). Here the upstream connection is closed instead, its bytes unread.
- **Informational responses.** The engine reads an HTTP/1 upstream's ``103 Early Hints`` or
  unsolicited ``100 Continue`` as the final response: the client gets the 1xx (with our headers
  on it) and never the real one. The engine answers ``Expect: 100-continue`` itself and drops an
  HTTP/2 upstream's 1xx, so here every 1xx head but ``101`` is dropped before it is parsed.
- **The engine's own error texts.** They quote the bytes the engine could not parse or did not
  expect (a response head cut short, a bad status line, a body sent after the end or to a HEAD),
  in the error page the client gets and in the log. Here the quote and what follows are withheld
  (:func:`without_quoted_bytes`); the ``error`` hook does the same for the flow's error text.

Each replaces a name in one of mitmproxy's layer modules, the names those modules look up when
a connection starts. :func:`install` checks that the names are still there, so a mitmproxy that
moved them fails at start instead of quietly losing the defence.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Generator

import h11
import wsproto.events
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer
from mitmproxy import connection, http
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers import websocket
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

type ControlScrubber = Callable[[wsproto.events.Event], wsproto.events.Event]
CONTROL_FRAMES = (wsproto.events.Ping, wsproto.events.Pong, wsproto.events.CloseConnection)

_scrubbers: weakref.WeakKeyDictionary[connection.Connection, ControlScrubber] = weakref.WeakKeyDictionary()
_engine_body_reader = _http1.make_body_reader
_engine_websocket_connection = websocket.WebsocketConnection
_engine_http1_client = _http1.Http1Client
_engine_format_error = _http1.format_error
ERROR_PAGE_MODULES = (_http1, _http2, _http3)
# A whole 1xx response head but 101's: the status line, header lines, the blank line (h11 accepts bare \n).
INTERIM_HEAD = re.compile(rb"HTTP/1\.[01] 1(?!01)[0-9]{2}(?:[ \t][^\n]*)?\n(?:[^\r\n][^\n]*\n)*\r?\n")
QUOTED = re.compile(r"""(?<!\w)(?:b(?=['"]))?['"].*""", re.DOTALL)  # b'…', '…' or "…" to the end, not it's
WITHHELD = "[bytes withheld]"


def without_quoted_bytes(message: str) -> str:
    """``message`` up to the first quoted value (the engine quotes the bytes it could not parse
    with ``!r``: an upstream's bytes, which may hold a reflected secret)."""
    return QUOTED.sub(WITHHELD, message, count=1)


def _format_error(status_code: int, message: str) -> bytes:
    return _engine_format_error(status_code, without_quoted_bytes(message))


def scrub_control_frames(server: connection.Connection, scrub: ControlScrubber) -> None:
    """Pass every control frame the upstream sends on ``server`` through ``scrub`` (for as long
    as the connection lives) before the engine logs or forwards it."""
    _scrubbers[server] = scrub


class _ScrubbedWebsocketConnection(_engine_websocket_connection):
    """The engine's WebSocket connection, whose control frames go through a registered scrubber."""

    def events(self) -> Generator[wsproto.events.Event]:
        scrub = _scrubbers.get(self.conn)
        for event in super().events():
            yield scrub(event) if scrub is not None and isinstance(event, CONTROL_FRAMES) else event


class _ChunkedReaderWithoutTrailers(ChunkedReader):
    """h11's chunked reader, ending the body without the trailer fields the engine cannot take."""

    def __call__(self, buf: ReceiveBuffer) -> h11.Data | h11.EndOfMessage | None:
        event = super().__call__(buf)
        return h11.EndOfMessage() if isinstance(event, h11.EndOfMessage) else event


def _body_reader(expected_size: int | None) -> _http1.TBodyReader:
    return _ChunkedReaderWithoutTrailers() if expected_size is None else _engine_body_reader(expected_size)


def is_websocket_upgrade(request: http.Request, response: http.Response) -> bool:
    """The engine's own test (``HttpStream.send_response``) for a ``101`` it relays as WebSocket."""
    upgrade: str = response.headers.get("upgrade", "")
    return upgrade.lower() == "websocket" and request.headers.get("sec-websocket-version", "") == "13"


class _GuardedHttp1Client(_engine_http1_client):
    """The engine's HTTP/1 connection to an upstream, which after a ``101`` to another protocol than
    WebSocket closes the connection instead of relaying what follows (the flow itself is refused
    by the ``response`` hook), and closes it, unlogged, on bytes no request asked for."""

    def read_headers(self, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        if isinstance(event, events.DataReceived) and not self.request:
            # bytes no request asked for (a body after the end, or to a HEAD), which the engine logs
            self.buf = ReceiveBuffer()
            yield commands.Log("Unexpected data from server; connection closed, the bytes withheld.")
            yield commands.CloseConnection(self.conn)
        else:
            if isinstance(event, events.DataReceived):
                self._drop_interim_heads()
            yield from super().read_headers(event)

    def _drop_interim_heads(self) -> None:
        """Remove the whole 1xx heads (but 101) at the front of the buffer, unread: the final head follows."""
        data = bytes(self.buf)
        start = 0
        while (head := INTERIM_HEAD.match(data, start)) is not None:
            start = head.end()
        if start:
            self.buf = ReceiveBuffer()
            self.buf += data[start:]

    def make_pipe(self) -> layer.CommandGenerator[None]:
        request, response = self.request, self.response
        if request and response and response.status_code == 101 and not is_websocket_upgrade(request, response):
            self.buf = ReceiveBuffer()  # the new protocol's first bytes: never relayed, never logged
            self.state = self.done
            yield commands.CloseConnection(self.conn)
        else:
            yield from super().make_pipe()


def install() -> None:
    """Put them all in place; idempotent. Raises RuntimeError if mitmproxy no longer has the names."""
    names = [(_http1, "make_body_reader"), (websocket, "WebsocketConnection"), (http_layers, "Http1Client")]
    names += [(module, "format_error") for module in ERROR_PAGE_MODULES]
    if not all(callable(getattr(module, name, None)) for module, name in names):
        raise RuntimeError("this mitmproxy version moved the layer internals clavis-mcp scrubs through")
    _http1.make_body_reader = _body_reader
    # replacing the engine's classes is the point (see above); mypy does not let a class name be assigned
    websocket.WebsocketConnection = _ScrubbedWebsocketConnection  # type: ignore[misc]
    http_layers.Http1Client = _GuardedHttp1Client  # type: ignore[misc]
    for module in ERROR_PAGE_MODULES:
        module.format_error = _format_error  # type: ignore[attr-defined]
