"""call_service reaches the embedded proxy in base-URL mode, handed over in process: no CONNECT,
no TLS, no socket between the gateway and the proxy; a plain-http:// local service through the
proxy as a forward proxy. Real embedded proxy, real upstreams on 127.0.0.1, real MCP sessions."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mitmproxy import http

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.proxy.base_url_front import BaseUrlServer
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream, LoopbackHandler, Received
from tests.conftest import SECRET, make_service

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


class CountTunnels:
    """An engine addon that counts CONNECT requests (tunnels) reaching mitmproxy."""

    def __init__(self) -> None:
        self.tunnels = 0

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self.tunnels += 1


@pytest.fixture
def plain_upstream() -> Iterator[tuple[ThreadingHTTPServer, list[Received]]]:
    """A plain-HTTP echo server on 127.0.0.1 (a local service that allows http://)."""
    received: list[Received] = []

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            received.append(Received(self.command, self.path, list(self.headers.items()), b""))
            payload = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server, received
    server.shutdown()
    server.server_close()


@asynccontextmanager
async def session(vault: Vault, audit: AuditLog, home: Path, counter: CountTunnels) -> AsyncIterator[Client]:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), config=ProxyConfig(extra_addons=(counter,)))
    async with Client(build_server(gateway)) as client:
        yield client


async def call(client: Client, service: str, url: str, **more: Any) -> Any:
    return await client.call_tool("call_service", {"service_name": service, "method": "GET", "url": url, **more})


async def test_call_service_reaches_the_proxy_without_a_tunnel_and_keeps_every_report(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream
) -> None:
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    counter = CountTunnels()
    async with session(vault, audit, home, counter) as client:
        first = await call(client, "echo", f"https://127.0.0.1:{upstream.port}/v1/a/../models?x=1", params={"y": "2"})
        second = await call(client, "echo", f"https://127.0.0.1:{upstream.port}/v1/again")
    assert counter.tunnels == 0  # the gateway used to open a CONNECT tunnel (and TLS) to the proxy
    assert not first.is_error and not second.is_error
    out = first.structured_content
    assert out["url"] == f"https://127.0.0.1:{upstream.port}/v1/models?x=1&y=2"  # the model's URL, as sent
    assert out["body"]["path"] == "/v1/models?x=1&y=2"
    assert out["body"]["headers"]["Authorization"] == "[REDACTED:echo]" and out["redactions"] >= 1
    assert [r.path for r in upstream.received] == ["/v1/models?x=1&y=2", "/v1/again"]
    assert all(dict(r.headers)["Authorization"] == f"Bearer {SECRET}" for r in upstream.received)
    assert not any(name.lower().startswith("x-clavis") for r in upstream.received for name, _ in r.headers)
    records = {r["id"]: r for r in audit.records()}
    for result in (first, second):
        record = records[result.structured_content["audit_id"]]
        assert (record["decision"], record["service"], record["source"]) == ("injected", "echo", "mcp")
    assert "/s/" not in (home / "audit.jsonl").read_text()  # the record names the upstream path only


async def test_a_plain_http_local_service_is_reached_through_the_proxy(
    vault: Vault, audit: AuditLog, home: Path, plain_upstream: tuple[ThreadingHTTPServer, list[Received]]
) -> None:
    server, received = plain_upstream
    port = server.server_address[1]
    vault.add_service(make_service("plain", f"127.0.0.1:{port}", local=True, allow_http=True),
                      validate_secret(SECRET))  # fmt: skip
    counter = CountTunnels()
    async with session(vault, audit, home, counter) as client:
        result = await call(client, "plain", f"http://127.0.0.1:{port}/status")
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["body"]["headers"]["Authorization"] == "[REDACTED:plain]"
    assert [r.path for r in received] == ["/status"]
    assert dict(received[0].headers)["Authorization"] == f"Bearer {SECRET}"
    assert "Proxy-Authorization" not in dict(received[0].headers)
    record = next(r for r in audit.records() if r["id"] == out["audit_id"])
    assert (record["decision"], record["scheme"]) == ("injected", "http")


async def test_headers_that_are_not_one_plain_http_field_are_refused_before_anything_is_sent(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream
) -> None:
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    async with session(vault, audit, home, CountTunnels()) as client:
        accented = await call(client, "echo", f"https://127.0.0.1:{upstream.port}/", headers={"X-Note": "café"})
        spaced = await call(client, "echo", f"https://127.0.0.1:{upstream.port}/", headers={"X Note": "a"})
    assert accented.is_error and "printable ASCII" in accented.content[0].text  # httpx crashed on it
    assert spaced.is_error and "not an HTTP token" in spaced.content[0].text
    assert upstream.received == []


@dataclass
class FrontConnections:
    """The connections the proxy's base-URL front has served: opened, and closed since."""

    opened: int = 0
    closed: int = 0


@pytest.fixture
def front_connections(monkeypatch: pytest.MonkeyPatch) -> FrontConnections:
    counts = FrontConnections()
    serve = BaseUrlServer.serve

    async def counted(self: BaseUrlServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts.opened += 1
        try:
            await serve(self, reader, writer)
        finally:
            counts.closed += 1

    monkeypatch.setattr(BaseUrlServer, "serve", counted)
    return counts


async def test_calls_are_handed_to_the_front_in_process_without_a_connection_to_the_proxy(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream, front_connections: FrontConnections
) -> None:
    """The gateway's base-URL requests go to the front as objects (proxy/in_process.py): no socket,
    no HTTP client or parser between the two, the same stages and records."""
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    async with session(vault, audit, home, CountTunnels()) as client:
        results = [await call(client, "echo", f"https://127.0.0.1:{upstream.port}/v1/{n}") for n in range(3)]
    assert not any(result.is_error for result in results)
    assert front_connections.opened == 0
    assert [r.path for r in upstream.received] == ["/v1/0", "/v1/1", "/v1/2"]
    records = {r["id"]: r for r in audit.records()}
    assert [records[r.structured_content["audit_id"]]["decision"] for r in results] == ["injected"] * 3
