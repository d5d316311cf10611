"""Test-only stand-ins for DNS and the network, so real-looking host names reach loopback.

:class:`LoopbackRoutes` gives each routed name a made-up public address (its ``resolve`` is
the proxy's resolver) and, in ``server_connect`` after the proxy's own dial check, sends
connections for those made-up addresses to the loopback port behind the name. SNI, Host and
certificate verification keep the real name. Names may instead resolve to a given address
(``resolve_to``), to exercise the private-address checks; those are dialled as resolved.
"""

from __future__ import annotations

from mitmproxy.proxy import server_hooks

FAKE_PUBLIC_NET = "93.184.216."  # public (is_global) addresses; never really dialled


class LoopbackRoutes:
    def __init__(self, routes: dict[str, int], resolve_to: dict[str, str] | None = None) -> None:
        self._fake: dict[str, str] = {}
        self._ports: dict[str, int] = {}
        for index, (name, port) in enumerate(routes.items(), start=1):
            address = f"{FAKE_PUBLIC_NET}{index}"
            self._fake[name] = address
            self._ports[address] = port
        self._resolve_to = dict(resolve_to or {})

    async def resolve(self, host: str, port: int) -> list[str]:
        if host in self._resolve_to:
            return [self._resolve_to[host]]
        if host in self._fake:
            return [self._fake[host]]
        if host in ("localhost", "127.0.0.1", "::1"):
            return ["127.0.0.1" if host != "::1" else "::1"]
        raise OSError(f"test resolver: unknown host {host}")

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.error or data.server.address is None:
            return
        port = self._ports.get(str(data.server.address[0]))
        if port is not None:
            data.server.address = ("127.0.0.1", port)
