"""Keep-alive connections to upstreams for the base-URL front, never shared across services.

A connection is kept per ``(agent, service, host, port)``: the TLS server name is the host, and
the address it was dialled to is the one the dial guard checked for that name when it was opened
(as mitmproxy reuses a connection per name, :mod:`.upstream_reuse`). The service and the agent are
part of the key so that no connection opened for one service or one agent ever carries another's
request (a keep-alive connection is state an upstream can tie to whoever used it first, and bytes
it sends late would answer the next request on it). A connection goes back to the pool only after
a response read whole with nothing after it and no ``Connection: close``; one that has anything
to read when it is taken again (bytes no request asked for, or its end) is closed, not used. The
pool is bounded in size and idle time.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import connection

type PoolKey = tuple[str, str, str, int]  # agent, service, host (the TLS server name), port
IDLE_SECONDS = 30.0  # below the idle timeouts of common API front ends (60 s and more)
PER_KEY = 512  # as many as the front serves clients at once: fewer made busy clients dial anew
TOTAL = 1024  # idle connections in all; each goes after IDLE_SECONDS
DIAL_SECONDS = 30.0  # TCP connect and TLS handshake
UPSTREAM_BUFFER = 1024 * 1024  # a connection's read buffer (its transport pauses at twice this)


def upstream_tls(bundle: Path) -> ssl.SSLContext:
    """The trust mitmproxy is given (``proxy/upstream_trust.py``'s bundle), HTTP/1.1 only."""
    context = ssl.create_default_context(cafile=str(bundle))
    context.set_alpn_protocols(["http/1.1"])
    return context


@dataclass(eq=False)
class Upstream:
    """One open connection; ``server`` is what the stages saw (the checked address, the SNI)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: connection.Server
    key: PoolKey
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < IDLE_SECONDS
        return fresh and not self.writer.is_closing() and self._quiet()

    def _quiet(self) -> bool:
        """Nothing to read, neither buffered nor on the socket: an idle connection says nothing."""
        if self.reader.at_eof() or len(getattr(self.reader, "_buffer", b"")) > 0:
            return False
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        poll = select.poll()
        poll.register(sock.fileno(), select.POLLIN)
        return not poll.poll(0)

    def close(self) -> None:
        """Drop the connection at once: after an error or a refusal no TLS goodbye is owed to it."""
        self.writer.transport.abort()


class UpstreamPool:
    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._idle: OrderedDict[PoolKey, list[Upstream]] = OrderedDict()
        self._count = 0

    async def dial(self, server: connection.Server, key: PoolKey) -> Upstream:
        """Open a connection to ``server.address`` (dialled as it is: never resolved again) with
        ``server.sni`` as the name the certificate must hold."""
        assert server.address is not None
        host, port = server.address
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self._context, server_hostname=server.sni, limit=UPSTREAM_BUFFER),
            DIAL_SECONDS,
        )
        return Upstream(reader, writer, server, key)

    def take(self, key: PoolKey) -> Upstream | None:
        """The most recently used idle connection for ``key`` still open; stale ones are closed."""
        idle = self._idle.get(key)
        while idle:
            upstream = idle.pop()
            self._count -= 1
            if upstream.usable():
                return upstream
            upstream.close()
        return None

    def give_back(self, upstream: Upstream) -> None:
        upstream.idle_since = time.monotonic()
        idle = self._idle.setdefault(upstream.key, [])
        self._idle.move_to_end(upstream.key)
        idle.append(upstream)
        self._count += 1
        if len(idle) > PER_KEY:
            idle.pop(0).close()
            self._count -= 1
        while self._count > TOTAL:
            oldest_key = next(iter(self._idle))
            oldest = self._idle[oldest_key]
            if oldest:
                oldest.pop(0).close()
                self._count -= 1
            if not oldest:
                del self._idle[oldest_key]

    def close(self) -> None:
        """Close every idle connection at once (the proxy is stopping: no TLS goodbye is waited for)."""
        for idle in self._idle.values():
            for upstream in idle:
                upstream.close()
        self._idle.clear()
        self._count = 0
