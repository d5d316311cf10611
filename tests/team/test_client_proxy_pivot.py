"""The team client's `clavis-mcp proxy` tunnels hosts no team service owns, but never into loopback,
the LAN or cloud metadata: private literals and loopback names are refused at CONNECT, and names
that resolve to a private address are refused when the tunnel is dialled (as in local mode)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme
from mitmproxy import master, options
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig

from clavis_mcp.certs import LocalCA
from clavis_mcp.clavis_cli.team_proxy import PROXY_USER, team_addons
from clavis_mcp.mcp_front.team_client import TeamClient
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.proxy.routing import LoopbackRoutes
from tests.proxy.upstreams import reflecting_upstream
from tests.team.conftest import TeamServer, add_echo
from tests.team.test_client_proxy import running_proxy

pytestmark = pytest.mark.e2e


@contextmanager
def loopback_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback-only service that records every connection it accepts (none must arrive)."""
    accepted: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    accepted.append(conn.recv(100))
                except OSError:
                    accepted.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        srv.close()


def connect_status(proxy_url: str, target: str) -> str:
    """The status line the proxy answers a CONNECT to ``target`` with."""
    url = httpx.URL(proxy_url)
    auth = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
    with socket.create_connection((url.host, url.port or 80), timeout=30) as sock:
        sock.sendall(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n")[0].decode()


def loopback_name() -> str:
    """This machine's own host name, which its resolver maps to a loopback address."""
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    assert addresses and all(a.startswith("127.") or a == "::1" for a in addresses), (name, addresses)
    return name


def test_private_destinations_are_refused_and_team_services_still_go_through_the_egress(
    server: TeamServer, upstream: EchoUpstream, tmp_path: Path
) -> None:
    add_echo(server, upstream)
    with loopback_listener() as (port, accepted), running_proxy(server, tmp_path, ["echo"]) as proxy:
        targets = ("127.0.0.1:{}", "10.0.0.1:443", "169.254.169.254:80", "localhost:{}", "[::1]:{}", "::1:{}")
        for target in (t.format(port) for t in targets):  # "::1:PORT" bare, as httpx writes it: was the engine's 400
            assert connect_status(proxy["HTTPS_PROXY"], target).startswith("HTTP/1.1 403"), target
        name = loopback_name()
        trust = ssl.create_default_context(cafile=proxy["SSL_CERT_FILE"])
        with httpx.Client(proxy=proxy["HTTPS_PROXY"], verify=trust, trust_env=False, timeout=30) as agent:
            for url in (f"https://127.0.0.1:{port}/admin", f"https://{name}:{port}/admin"):
                with pytest.raises(httpx.HTTPError):
                    agent.get(url)
            answer = agent.get(f"https://127.0.0.1:{upstream.port}/v1/still-egress")
        assert answer.status_code == 200, answer.text
        assert SECRET not in answer.text and "REDACTED" in answer.json()["headers"]["Authorization"]
    assert accepted == []
    log = (tmp_path / "proxy.log").read_text()
    assert "169.254.169.254:80" in log and f"{name}:{port}: it resolves to the private or loopback address" in log


@pytest.fixture
async def in_process_proxy(tmp_path: Path, upstream_ca: trustme.CA) -> AsyncIterator[tuple[str, int, list[object]]]:
    """The team client's addons in a real mitmproxy, with test DNS: ``api.public.example`` is a made-up
    public address routed (after the dial guard) to a TLS upstream on loopback; ``db.lan.example``
    resolves to 10.0.0.5 and ``sneaky.example`` to 127.0.0.1."""
    with reflecting_upstream(upstream_ca.issue_cert("api.public.example")) as (port, received):
        routes = LoopbackRoutes(
            {"api.public.example": port}, {"db.lan.example": "10.0.0.5", "sneaky.example": "127.0.0.1"}
        )
        ca = LocalCA(tmp_path / "certs")
        ca.ensure()
        opts = options.Options(listen_host="127.0.0.1", listen_port=0, confdir=str(ca.directory), upstream_cert=False)
        server = proxyserver.Proxyserver()
        m = master.Master(opts, event_loop=asyncio.get_running_loop())
        client = TeamClient("https://team.example.test", env={})
        m.addons.add(core.Core(), disable_h2c.DisableH2C(), server, next_layer.NextLayer(), tlsconfig.TlsConfig(),
                     *team_addons(client, [], "tok", routes.resolve), routes)  # fmt: skip
        opts.update(connection_strategy="lazy")
        task = asyncio.create_task(m.run())
        try:
            while not server.listen_addrs():
                await asyncio.sleep(0.05)
            yield f"http://{PROXY_USER}:tok@127.0.0.1:{server.listen_addrs()[0][1]}", port, received
        finally:
            await server.servers.update([])
            m.shutdown()
            await task


def upstream_only(upstream_ca: trustme.CA) -> ssl.SSLContext:
    """Trust only the upstream's own CA: a tunnel that needs ours would be an interception."""
    trust = ssl.create_default_context()
    upstream_ca.configure_trust(trust)
    return trust


@pytest.mark.anyio
async def test_a_public_name_no_team_service_owns_is_tunnelled_untouched(
    in_process_proxy: tuple[str, int, list[object]], upstream_ca: trustme.CA
) -> None:
    proxy, port, received = in_process_proxy
    async with httpx.AsyncClient(proxy=proxy, verify=upstream_only(upstream_ca), trust_env=False) as agent:
        answer = await agent.get(f"https://api.public.example:{port}/passed")
    assert answer.status_code == 200, answer.text
    assert len(received) == 1


@pytest.mark.anyio
async def test_names_resolving_to_private_addresses_are_refused_at_dial_time(
    in_process_proxy: tuple[str, int, list[object]], upstream_ca: trustme.CA, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy, port, received = in_process_proxy
    async with httpx.AsyncClient(proxy=proxy, verify=upstream_only(upstream_ca), trust_env=False) as agent:
        for name in ("db.lan.example", "sneaky.example"):
            with pytest.raises(httpx.HTTPError):
                await agent.get(f"https://{name}:{port}/admin")
    assert received == []
    err = capsys.readouterr().err
    assert "db.lan.example:" in err and "private or loopback address 10.0.0.5" in err
    assert "sneaky.example:" in err and "private or loopback address 127.0.0.1" in err
