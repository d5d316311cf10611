"""Dial guard: the address that was checked is the address that is dialled.

A host name that passed the destination check can still resolve to 127.0.0.1, 10.0.0.5 or
169.254.169.254 (DNS rebinding, a hostile or mistaken record). So the proxy resolves the
name itself when it opens the upstream connection, refuses it if any address it resolves
to is private, loopback, link-local, CGNAT or metadata (unless the owning service was added
with ``--local``), or if it is the proxy's own port, and then dials the checked IP. The name
stays the TLS server name and the Host header, so certificate verification is unchanged.
Of several checked addresses it dials the first that answers (happy eyeballs,
:func:`~clavis_mcp.vault.dialing.first_reachable`), so one dead address does not fail a service.
"""

from __future__ import annotations

from mitmproxy import ctx, http
from mitmproxy.proxy import server_hooks

from clavis_mcp.vault import Vault, canonical_host
from clavis_mcp.vault.dialing import Resolver, first_reachable, private_address_among, system_resolver

from .destination import is_loopback_host
from .flowmeta import DECISION, REASON

REFUSAL_PREFIX = "clavis-mcp refused to dial"
__all__ = ["DialGuard", "Resolver"]


class DialGuard:
    """``resolver`` is injectable so tests can stand in for DNS; production uses the system's.

    ``vault`` says which destinations belong to ``--local`` services (without one, none does:
    the team client's proxy); ``exempt`` is one address the user configured and that is dialled
    as it is (the team server the team client's proxy forwards to)."""

    def __init__(
        self, vault: Vault | None, resolver: Resolver | None = None, *, exempt: tuple[str, int] | None = None
    ) -> None:
        self._vault = vault
        self._resolve = resolver or system_resolver
        self._exempt = exempt
        self._proxy_ports: frozenset[int] = frozenset()

    def running(self) -> None:
        server = ctx.master.addons.get("proxyserver")
        if server is not None:
            self._proxy_ports = frozenset(address[1] for address in server.listen_addrs())

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.error or data.server.address is None:
            return
        if self._exempt is not None and tuple(data.server.address) == self._exempt:
            return
        try:
            await self._check_and_pin(data)
        except Exception as exc:  # an unchecked dial must not go ahead (mitmproxy would carry on)
            data.server.error = f"{REFUSAL_PREFIX} {data.server.address[0]}: the check failed ({type(exc).__name__})"

    async def _check_and_pin(self, data: server_hooks.ServerConnectionHookData) -> None:
        assert data.server.address is not None
        name, port = str(data.server.address[0]), int(data.server.address[1])
        try:
            host = canonical_host(name)
        except ValueError:
            data.server.error = f"{REFUSAL_PREFIX} {name!r}: not a valid host name"
            return
        scheme = "https" if data.server.tls else "http"
        owners = self._vault.snapshot().owners(host, port, scheme) if self._vault is not None else ()
        local_allowed = bool(owners) and all(owner.local for owner in owners)
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            data.server.error = f"{REFUSAL_PREFIX} {host}: it does not resolve ({exc.__class__.__name__})"
            return
        if not addresses:
            data.server.error = f"{REFUSAL_PREFIX} {host}: it resolves to no address"
            return
        if port in self._proxy_ports and any(is_loopback_host(address) for address in addresses):
            data.server.error = f"{REFUSAL_PREFIX} {host}:{port}: it is clavis-mcp's own proxy port"
            return
        private = private_address_among(addresses, local_allowed)
        if private is not None:
            data.server.error = (
                f"{REFUSAL_PREFIX} {host}:{port}: it resolves to the private or loopback address {private}; "
                + (
                    "only services added with --local may reach such addresses"
                    if self._vault is not None
                    else "this proxy does not pass such addresses through"
                )
            )
            return
        reachable = await first_reachable(addresses, port)
        if reachable is None:
            data.server.error = (
                f"cannot connect to {host}:{port}: none of its addresses ({', '.join(addresses)}) answered"
            )
            return
        data.server.address = (reachable, port)
        if data.server.tls and data.server.sni is None:
            data.server.sni = host

    def error(self, flow: http.HTTPFlow) -> None:
        """A dial we refused is a refusal in the audit log, not a network error."""
        message = flow.error.msg if flow.error else ""
        if REFUSAL_PREFIX in message:
            flow.metadata[DECISION] = "refused"
            flow.metadata[REASON] = message[message.index(REFUSAL_PREFIX) :]
