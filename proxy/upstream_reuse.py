"""Keep-alive to upstreams: a connection opened for ``host:port`` is found again for ``host:port``.

mitmproxy reuses an upstream connection when its address equals the next request's
``(host, port)``. The dial guard (and a test's router) replace the address by the checked IP
before dialling, so no later request ever matched: every request in a CONNECT tunnel opened a
new TCP and TLS connection to the upstream (base-URL mode has its own pool,
:mod:`.upstream_pool`). This addon notes the
address as the request named it before anything rewrites it, and puts it back once the
connection is open. The socket stays connected to the address that was checked for that name,
so reusing it for the same name is what keep-alive to that name means; nothing is re-resolved.
"""

from __future__ import annotations

import weakref

from mitmproxy import connection
from mitmproxy.proxy import server_hooks


class KeepUpstreamAddress:
    """Must sit before every addon that rewrites ``server.address`` in ``server_connect``."""

    def __init__(self) -> None:
        self._named: weakref.WeakKeyDictionary[connection.Server, tuple[str, int]] = weakref.WeakKeyDictionary()

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is not None:
            self._named[data.server] = (str(data.server.address[0]), int(data.server.address[1]))

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        named = self._named.pop(data.server, None)
        if named is not None and data.server.address != named:
            # Server forbids changing the address of an open connection; this is the one change
            # that names the connection as mitmproxy's reuse check will look for it.
            object.__setattr__(data.server, "address", named)
