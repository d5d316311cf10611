"""Fixtures for end-to-end proxy tests with real-looking host names routed to loopback.

Two services, ``alpha`` (``Authorization: Bearer``) and ``beta`` (``x-api-key``), on names
that :class:`~tests.proxy.routing.LoopbackRoutes` sends to one reflecting upstream whose
certificate covers every name used here, look-alikes included: if the proxy ever forwarded
a request it should have refused, the upstream would receive (and record) it.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, HostRule, Vault, parse_host_rule, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import Received
from tests.conftest import PROXY_TOKEN, PROXY_USER, make_service, running_proxy
from tests.proxy.routing import LoopbackRoutes
from tests.proxy.upstreams import V6Upstream, ipv6_echo, reflecting_upstream

SECRET_A = "sk-alpha-7Qm2xV9pL4tR8sW1yZ3nB6cD0fG5hJ"
SECRET_B = "beta_key_N4vX8qP2mK7wR1tY5uI9oE3aS6dF0"
A_HOST, B_HOST = "api.alpha.example", "api.beta.example"
WILD_DOMAIN = "wild.example"
PASSTHROUGH_HOST = "cdn.passthrough.example"
LOOKALIKES = (
    "evilapi.alpha.example",
    "api.alpha.example.evil.test",
    WILD_DOMAIN,
    "evil.test",
)
PRIVATE_PASSTHROUGH_HOST = "intranet.passthrough.example"  # resolves to 127.0.0.1, where the upstream is
SHARED_HOST = "api.shared.example"  # two services, told apart by path prefix
ROUTED = (A_HOST, B_HOST, f"files.{WILD_DOMAIN}", PASSTHROUGH_HOST, SHARED_HOST, *LOOKALIKES)


@dataclass
class Upstream:
    port: int
    received: list[Received]
    gate: threading.Event = field(default_factory=threading.Event)
    gate_seen: list[bool] = field(default_factory=list)

    def credentials_seen(self) -> list[str]:
        """Every value of a credential-carrying header the upstream received, in any request."""
        names = {"authorization", "x-api-key", "x_api_key", "cookie"}
        return [v for r in self.received for k, v in r.headers if k.lower().replace("_", "-") in names]

    def saw_any_secret(self) -> bool:
        blob = repr([(r.path, r.headers, r.body) for r in self.received])
        return SECRET_A in blob or SECRET_B in blob


@pytest.fixture(scope="session")
def routed_leaf(upstream_ca: trustme.CA) -> trustme.LeafCert:
    return upstream_ca.issue_cert(*ROUTED, "internal.alpha.example", "lan.alpha.example", PRIVATE_PASSTHROUGH_HOST)


@pytest.fixture
def reflector(routed_leaf: trustme.LeafCert) -> Iterator[Upstream]:
    gate, gate_seen = threading.Event(), []
    with reflecting_upstream(routed_leaf, gate, gate_seen) as (port, received):
        yield Upstream(port, received, gate, gate_seen)


@pytest.fixture
def v6(upstream_ca: trustme.CA) -> Iterator[V6Upstream]:
    with ipv6_echo(upstream_ca) as upstream:
        yield upstream


@pytest.fixture
def services(vault: Vault) -> Vault:
    vault.add_service(make_service("alpha", A_HOST), validate_secret(SECRET_A))
    vault.add_service(make_service("beta", B_HOST, f"*.{WILD_DOMAIN}", header="x-api-key: {secret}"),
                      validate_secret(SECRET_B))  # fmt: skip
    return vault


def routes_for(upstream: Upstream, resolve_to: dict[str, str] | None = None) -> LoopbackRoutes:
    return LoopbackRoutes({name: upstream.port for name in ROUTED}, resolve_to)


@asynccontextmanager
async def proxy_to(
    vault: Vault, audit: AuditLog, home: Path, upstream: Upstream, tokens: Callable[[], Mapping[str, str]] | None = None
) -> AsyncIterator[EmbeddedProxy]:
    """A proxy over ``vault`` whose routed names all reach ``upstream``, for tests that need their own."""
    routes = routes_for(upstream)
    config = ProxyConfig(
        tokens=tokens or (lambda: {PROXY_USER: PROXY_TOKEN}), extra_addons=(routes,), resolver=routes.resolve
    )
    async with running_proxy(vault, audit, home, config) as p:
        yield p


@pytest.fixture
async def routed_proxy(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> AsyncIterator[EmbeddedProxy]:
    private = {"internal.alpha.example": "127.0.0.1", "lan.alpha.example": "127.0.0.1"}
    routes = routes_for(reflector, private | {PRIVATE_PASSTHROUGH_HOST: "127.0.0.1"})
    passthrough: tuple[HostRule, ...] = (
        parse_host_rule("*.passthrough.example"),
        parse_host_rule(f"{PRIVATE_PASSTHROUGH_HOST}:{reflector.port}"),
    )
    config = ProxyConfig(
        tokens=lambda: {PROXY_USER: PROXY_TOKEN},
        extra_addons=(routes,),
        resolver=routes.resolve,
        passthrough=passthrough,
    )
    p = EmbeddedProxy(services, audit, LocalCA(home / "certs"), config)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


PROXY_AUTH = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_TOKEN}".encode()).decode()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """A hand-written HTTP/1.1 client: the shapes real clients refuse to send are the point."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, proxy: EmbeddedProxy) -> RawClient:
        assert proxy.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        return cls(reader, writer)

    @classmethod
    @asynccontextmanager
    async def connected(cls, proxy: EmbeddedProxy) -> AsyncIterator[RawClient]:
        """:meth:`connect` for the length of an ``async with`` block, closed after it."""
        raw = await cls.connect(proxy)
        try:
            yield raw
        finally:
            await raw.close()

    async def tunnel(self, target: str, home: Path, sni: str | None, auth: str | None = PROXY_AUTH) -> RawResponse:
        """CONNECT to ``target``; on 200, TLS to the proxy with ``sni`` (trusting our CA)."""
        extra = f"Proxy-Authorization: {auth}\r\n" if auth else ""
        response = await self.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n".encode(), head=True)
        if response.status == 200:
            context = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
            context.check_hostname = False  # the SNI under test may differ from the target on purpose
            await self.writer.start_tls(context, server_hostname=sni)
        return response

    async def send(self, raw: bytes, head: bool = False) -> RawResponse:
        self.writer.write(raw)
        await self.writer.drain()
        return await self.read(head)

    async def read(self, head: bool = False) -> RawResponse:
        lines = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10) if length else b""
        return RawResponse(status, headers, body)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
