"""Shared fixtures: a temporary vault home, a loopback HTTPS echo upstream with its own CA,
and the real embedded proxy. Nothing here talks to anything but 127.0.0.1."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
import trustme
from hypothesis import settings

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Service, Vault, parse_header_template, parse_hosts, validate_secret
from clavis_mcp.vault.approvals import ApprovalHold, needs_for
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream, serve_https, write_ca

pytest_plugins = ["tests.leak_sweep"]

# No time limit per example: tests check behaviour, never speed (bench/ measures that), and a
# cold first example on a loaded 2-core machine can take longer than Hypothesis's 200 ms default.
settings.register_profile("clavis", deadline=None)
settings.load_profile("clavis")

SECRET = "sk-test-5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f12"
OTHER_SECRET = "ghp_other0123456789abcdefABCDEF012345"
PROXY_USER, PROXY_TOKEN = "tester", "proxy-token-for-tests-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def upstream_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, upstream_ca: trustme.CA) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem")))
    return home


@pytest.fixture
def upstream(upstream_ca: trustme.CA) -> Iterator[EchoUpstream]:
    with EchoUpstream.start(upstream_ca) as server:
        yield server


@pytest.fixture
def vault(home: Path) -> Iterator[Vault]:
    v = Vault.create(home)
    yield v
    v.close()


def make_service(name: str, *hosts: str, header: str = "Authorization: Bearer {secret}", **kw: object) -> Service:
    return Service(
        name=name,
        auth=parse_header_template(header),
        hosts=parse_hosts(list(hosts)),
        created_at=time.time(),
        **kw,  # type: ignore[arg-type]
    )


@contextmanager
def local_upstream(
    ca: trustme.CA, handler: type[BaseHTTPRequestHandler], vault: Vault, name: str = "api"
) -> Iterator[int]:
    """An HTTPS upstream on 127.0.0.1 answering with ``handler``, registered as the local service
    ``name`` holding SECRET; yields its port and stops it afterwards."""
    server, _ = serve_https(ca, handler, ("127.0.0.1",))
    port = server.server_address[1]
    try:
        vault.add_service(make_service(name, f"127.0.0.1:{port}", local=True), validate_secret(SECRET))
        yield port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_service(vault: Vault, upstream: EchoUpstream) -> Service:
    service = make_service("echo", f"127.0.0.1:{upstream.port}", local=True)
    vault.add_service(service, validate_secret(SECRET))
    return service


@pytest.fixture
def audit(vault: Vault) -> AuditLog:
    return AuditLog.for_vault(vault)


@asynccontextmanager
async def running_proxy(
    vault: Vault, audit: AuditLog, home: Path, config: ProxyConfig | None = None
) -> AsyncIterator[EmbeddedProxy]:
    """The embedded proxy over ``vault`` for the length of a ``with`` block; agents authenticate
    as PROXY_USER/PROXY_TOKEN unless ``config`` says otherwise."""
    p = EmbeddedProxy(
        vault, audit, LocalCA(home / "certs"), config or ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN})
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
async def proxy(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[EmbeddedProxy]:
    async with running_proxy(vault, audit, home) as p:
        yield p


@pytest.fixture
async def writes_held_proxy(
    vault: Vault, audit: AuditLog, home: Path, local_service: Service
) -> AsyncIterator[EmbeddedProxy]:
    """The embedded proxy over the local service, holding every write for a person's decision."""
    hold = ApprovalHold(home, needs_for("writes"), timeout=30, poll=0.05)
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=hold)
    async with running_proxy(vault, audit, home, config) as started:
        yield started


def proxy_client(
    proxy: EmbeddedProxy, home: Path, auth: tuple[str, str] | None = (PROXY_USER, PROXY_TOKEN)
) -> httpx.AsyncClient:
    """An agent using the proxy the way `clavis-mcp env` tells it to."""
    trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
    return httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=auth), verify=trust, trust_env=False)
