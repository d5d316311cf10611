"""The address that is checked is the address that is dialled, for every connection that carries a secret.

A host name that passed a check at registration can later resolve to 127.0.0.1, 10.0.0.5 or
169.254.169.254 (DNS rebinding, a hostile or mistaken record). So whoever opens a connection
that will carry a credential (the proxy dialling a service's host, the vault posting a refresh
token to a token endpoint) resolves the name itself, refuses it if any address is private,
loopback, link-local, CGNAT or metadata (unless the service was added with ``--local``), and
dials the checked address, keeping the name for TLS and ``Host``.

When a name has several checked addresses, one dead address must not fail the service: they
are tried in the resolver's order, each started ``HAPPY_EYEBALLS_DELAY`` after the one before
(RFC 8305's "happy eyeballs"), and the first that accepts a connection is the one dialled.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable

from .errors import DialRefused
from .hosts import is_public_address

Resolver = Callable[[str, int], Awaitable[list[str]]]
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried beside a slow one
CONNECT_TIMEOUT = 10.0  # seconds for any one address to accept


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def private_address_among(addresses: list[str], local_allowed: bool) -> str | None:
    """The first address a service not added with ``--local`` must not reach, or None."""
    if local_allowed:
        return None
    return next((address for address in addresses if not is_public_address(address)), None)


async def checked_address(host: str, port: int, *, local_allowed: bool, resolver: Resolver | None = None) -> str:
    """Resolve ``host`` and return the address to dial; DialRefused if it must not be dialled."""
    try:
        addresses = await (resolver or system_resolver)(host, port)
    except (OSError, UnicodeError) as exc:
        raise DialRefused(f"{host} does not resolve ({type(exc).__name__})") from None
    if not addresses:
        raise DialRefused(f"{host} resolves to no address")
    private = private_address_among(addresses, local_allowed)
    if private is not None:
        raise DialRefused(
            f"{host} resolves to the private or loopback address {private}; "
            "only services added with --local may reach such addresses"
        )
    return addresses[0]


async def first_reachable(
    addresses: list[str], port: int, *, delay: float = HAPPY_EYEBALLS_DELAY, timeout: float = CONNECT_TIMEOUT
) -> str | None:
    """The first of ``addresses`` (all checked) that accepts a TCP connection on ``port``, tried
    in order with staggered starts; None if none does. The probing connection is closed at once.
    A single address is returned untried: the dial itself reports it failing."""
    if len(addresses) == 1:
        return addresses[0]

    async def connect(address: str) -> str:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
        writer.close()
        return address

    # Not asyncio.staggered_race: it fails an assertion under mitmproxy's eager task factory.
    remaining, pending = list(addresses), set[asyncio.Future[str]]()
    try:
        while remaining or pending:
            if remaining:  # the next address: at once after a failure, else after ``delay``
                pending.add(asyncio.ensure_future(connect(remaining.pop(0))))
            done, pending = await asyncio.wait(
                pending, timeout=delay if remaining else None, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task.exception() is None:
                    return task.result()
        return None
    finally:
        for task in pending:
            task.cancel()


def upstream_context() -> ssl.SSLContext:
    """What a direct client of ours (a token endpoint, an app-token exchange) trusts: the system
    and certifi CAs, plus ``CLAVIS_UPSTREAM_CA`` (a corporate inspector, a test server), as the
    proxy does for API hosts."""
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    context.load_default_certs()
    extra = os.environ.get("CLAVIS_UPSTREAM_CA")
    if extra:
        context.load_verify_locations(cafile=extra)
    return context
