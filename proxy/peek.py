"""One port for both fronts: each new connection's first bytes say which one serves it.

The proxy's public port is mitmproxy's listener. Before the engine sees a connection, its first
bytes are read: an origin-form request for ``/s/...`` or ``/a/...`` (base-URL mode) goes to the
base-URL front; anything else (a CONNECT, an absolute-form request, a TLS ClientHello, any other
path) goes to mitmproxy as it came. The bytes read are put back into the connection's reader
before either front reads it, so neither sees a difference. This costs one read per connection,
not per request: a keep-alive connection stays with the front it started with.

One repair is made on the way: a CONNECT to a bare IPv6 address and port (``CONNECT ::1:8443``,
as httpcore 1.0, under httpx and the Python SDKs, writes it) is handed on with the address in
brackets (``CONNECT [::1]:8443``, RFC 9110's authority form), which is the only reading a CONNECT
target allows (it must end in a port); mitmproxy refuses the bare form outright (400, "Bad HTTP
request line"), before any stage or audit record. Nothing else changes: the destination check
then judges, and the dial guard dials, that one address and port. A zone id (``fe80::1%eth0``)
or anything else that is not a plain IPv6 address is left as it came, for the engine to refuse.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Awaitable, Callable

from mitmproxy.addons.proxyserver import Servers

type Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BASE_URL_TARGETS = (b"/s/", b"/a/")
METHOD_MAX = 32  # no method we serve is longer; past it the connection is not base-URL
READ_ALL = 1 << 20  # more than a StreamReader ever buffers (it pauses its transport at 128 KiB)
PEEK_SECONDS = 60.0  # a connection that says nothing for this long is closed
CONNECT = b"CONNECT "
CONNECT_LINE_MAX = 8 * 1024  # a CONNECT line is read whole up to this; a longer one goes on unrepaired


def starts_base_url(first: bytes) -> bool | None:
    """Whether a connection that began with ``first`` is a base-URL one; None: too few bytes to say."""
    method, space, rest = first.partition(b" ")
    if method and not method.isalpha():
        return False  # a TLS ClientHello, or not HTTP
    if not space:
        return None if len(first) < METHOD_MAX else False
    if len(rest) < len(BASE_URL_TARGETS[0]):
        return None if b"\n" not in rest else False
    return bool(method) and rest.startswith(BASE_URL_TARGETS)


def bracketed_connect(first: bytes) -> bytes:
    """``first`` with a bare IPv6 CONNECT target written in brackets; any other bytes unchanged.

    The port is what follows the last colon: a CONNECT target must end in one, so no other split
    is a valid request. The address must be a plain IPv6 address (no zone id)."""
    if not first.startswith(CONNECT):
        return first
    line, newline, rest = first.partition(b"\n")
    parts = line.split(b" ")
    if not newline or len(parts) != 3:
        return first
    host, colon, port = parts[1].rpartition(b":")
    if not colon or b":" not in host or b"%" in host or not port.isdigit():
        return first
    try:
        ipaddress.IPv6Address(host.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return first
    return b"CONNECT [%b]:%b %b\n%b" % (host, port, parts[2], rest)


async def _peek(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    first = b""
    while (verdict := starts_base_url(first)) is None or _connect_line_unread(first):
        data = await reader.read(READ_ALL)
        if not data:
            return first, False
        first += data
    return first, bool(verdict)


def _connect_line_unread(first: bytes) -> bool:
    """A CONNECT whose first line has not all arrived yet (it is repaired whole or not at all)."""
    return first.startswith(CONNECT) and b"\n" not in first and len(first) < CONNECT_LINE_MAX


def _put_back(reader: asyncio.StreamReader, first: bytes) -> asyncio.StreamReader:
    """``reader`` as if ``first`` had not been read (it was the whole buffer: ``READ_ALL``)."""
    if not reader.at_eof():
        reader.feed_data(first)
        return reader
    replay = asyncio.StreamReader()
    replay.feed_data(first)
    replay.feed_eof()
    return replay


class SamePortDispatch:
    """Hands each connection of mitmproxy's regular-mode listener to ``base_url`` or to the engine
    (always to the engine, with its CONNECT repaired, where there is no base-URL front: None).

    Connected to the proxy server's ``changed`` signal, which fires after a listener's server
    instance is made and before it listens: its ``handle_stream`` (what its asyncio server calls
    per connection) is wrapped then, for that instance only."""

    def __init__(self, servers: Servers, base_url: Handler | None) -> None:
        self._servers = servers
        self._base_url = base_url
        servers.changed.connect(self._wrap)

    def _wrap(self) -> None:
        for instance in self._servers:
            if instance.mode.type_name == "regular" and "handle_stream" not in vars(instance):
                engine = instance.handle_stream
                instance.handle_stream = functools.partial(self._dispatch, engine)  # type: ignore[method-assign]

    async def _dispatch(self, engine: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(PEEK_SECONDS):
                first, base_url = await _peek(reader)
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        if not first:
            writer.close()
            return
        if base_url and self._base_url is not None:
            await self._base_url(_put_back(reader, first), writer)
        else:
            await engine(_put_back(reader, bracketed_connect(first)), writer)
