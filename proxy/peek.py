"""One port for both fronts: each new connection's first bytes say which one serves it.

The proxy's public port is mitmproxy's listener. Before the engine sees a connection, its first
bytes are read: an origin-form request for ``/s/...`` or ``/a/...`` (base-URL mode) goes to the
base-URL front; anything else (a CONNECT, an absolute-form request, a TLS ClientHello, any other
path) goes to mitmproxy as it came. The bytes read are put back into the connection's reader
before either front reads it, so neither sees a difference. This costs one read per connection,
not per request: a keep-alive connection stays with the front it started with.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from mitmproxy.addons.proxyserver import Servers

type Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BASE_URL_TARGETS = (b"/s/", b"/a/")
METHOD_MAX = 32  # no method we serve is longer; past it the connection is not base-URL
READ_ALL = 1 << 20  # more than a StreamReader ever buffers (it pauses its transport at 128 KiB)
PEEK_SECONDS = 60.0  # a connection that says nothing for this long is closed


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


async def _peek(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    first = b""
    while (verdict := starts_base_url(first)) is None:
        data = await reader.read(READ_ALL)
        if not data:
            return first, False
        first += data
    return first, verdict


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
    """Hands each connection of mitmproxy's regular-mode listener to ``base_url`` or to the engine.

    Connected to the proxy server's ``changed`` signal, which fires after a listener's server
    instance is made and before it listens: its ``handle_stream`` (what its asyncio server calls
    per connection) is wrapped then, for that instance only."""

    def __init__(self, servers: Servers, base_url: Handler) -> None:
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
        reader = _put_back(reader, first)
        await (self._base_url if base_url else engine)(reader, writer)
