"""Keep-alive HTTP/1.1 connections from the gateway to the embedded proxy, on loopback, in plain text.

call_service sends its requests to the proxy's base-URL front: plain HTTP to 127.0.0.1, one
request at a time per connection. All a client has to do on that hop is write a request and read
its answer, so this one is small: h11 frames the messages, asyncio streams carry them, idle
connections wait in a short stack. httpx spent about 800 µs of CPU per request on the same hop
(its pool, its locks, a failed import of sniffio for each of them), this about 150 µs. It keeps no
cookies, follows no redirects and decodes nothing: the gateway reads the raw body within its bound.

Failures are builtin exceptions: ``ConnectionError`` when the proxy closed a connection or
answered something that is not HTTP/1.1 (an ``OSError`` when it cannot be reached), and
``TimeoutError`` from the caller's own deadline.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Sequence

import h11

READ_SIZE = 64 * 1024
IDLE_CONNECTIONS = 8  # kept open between calls; more calls at once open more, closed after use


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.http = h11.Connection(h11.CLIENT)

    async def event(self) -> h11.Event:
        """The next event of the answer, reading as much as it needs."""
        try:
            while (event := self.http.next_event()) is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(READ_SIZE))  # b"" at the end: h11 notes it
        except h11.RemoteProtocolError as exc:
            raise ConnectionError(f"the clavis proxy's answer is not valid HTTP/1.1 ({exc})") from None
        if not isinstance(event, h11.Event) or isinstance(event, h11.ConnectionClosed):  # closed, or PAUSED
            raise ConnectionError("the clavis proxy closed the connection before its answer was complete")
        return event

    def reusable(self) -> bool:
        """Whether the last exchange ended cleanly and the proxy has not closed the connection since."""
        if self.writer.is_closing() or self.reader.at_eof():
            return False
        if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
            return False
        self.http.start_next_cycle()
        return True

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        """Close with a reset, not a FIN: on plain HTTP a FIN may be a client's half-close, after which
        the proxy would wait for the upstream's answer; a reset tells it the request was given up."""
        if self.writer.transport.is_closing():  # already closed (the link was closed under it)
            return
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Answer:
    """The status line and headers of one answer; its body is read with :meth:`chunks`, and
    :meth:`aclose` must follow (it gives the connection back for the next request, or closes it)."""

    def __init__(self, link: ProxyLink, connection: _Connection, head: h11.Response) -> None:
        self._link, self._connection = link, connection
        self.status = head.status_code
        self.headers = [(name.decode("latin-1"), _text(value)) for name, value in head.headers.raw_items()]
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, as sent (no transfer coding, any content coding left in place)."""
        while not self.complete:
            event = await self._connection.event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True

    async def aclose(self) -> None:
        self._link._release(self._connection, self.complete)


class ProxyLink:
    """Connections to one loopback address (the proxy's), opened on demand and kept while idle."""

    def __init__(self, host: str, port: int, *, connect_timeout: float) -> None:
        self.host, self.port = host, port
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._closed = False

    async def send(
        self, method: str, target: str, headers: Sequence[tuple[bytes, bytes]], body: bytes | None
    ) -> Answer:
        """Send one request (``target`` in origin form; ``headers`` include Host and, for a body,
        Content-Length) and read its answer's head."""
        connection = await self._connection()
        try:
            data = connection.http.send(h11.Request(method=method, target=target, headers=list(headers))) or b""
            if body:
                data += connection.http.send(h11.Data(data=body)) or b""
            connection.writer.write(data + (connection.http.send(h11.EndOfMessage()) or b""))
            await connection.writer.drain()
            while not isinstance(event := await connection.event(), h11.Response):
                pass  # 1xx informational answers
        except BaseException:
            self._release(connection, False)
            raise
        return Answer(self, connection, event)

    async def _connection(self) -> _Connection:
        if self._closed:
            raise ConnectionError("the connection to the clavis proxy is closed (the MCP server is stopping)")
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable():
                break
            connection.close()
        else:
            async with asyncio.timeout(self._connect_timeout):
                connection = _Connection(*await asyncio.open_connection(self.host, self.port))
        self._busy.add(connection)
        return connection

    def _release(self, connection: _Connection, complete: bool) -> None:
        """After an answer: keep the connection for the next request if the exchange ended cleanly;
        reset it if it did not (a body left unread, a failure, a timeout); close it if the link is."""
        self._busy.discard(connection)
        if not complete:
            connection.abort()
        elif not self._closed and len(self._idle) < IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close every connection, cutting requests still in flight (their reads fail)."""
        self._closed = True
        for connection in self._idle:
            connection.close()
        for connection in self._busy:
            connection.abort()
        self._idle.clear()
        self._busy.clear()


def _text(value: bytes) -> str:
    """A header value as text: UTF-8 where it is, else Latin-1 (every byte maps to a character)."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
