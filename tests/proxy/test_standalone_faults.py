"""Issue 20.10, 20.11 and 20.5 for the standalone proxy: an upstream that never answers gets
the agent a clear 504 and an ``error`` record; a request body over the bound is refused (413)
before it is read whole; stopping finishes or fails what is in flight and records it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy.body_limit import RequestBodyLimit
from clavis_mcp.proxy.draining import Draining
from clavis_mcp.proxy.upstream_timeout import UpstreamTimeout
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, make_service, proxy_client
from tests.proxy.conftest import RawClient
from tests.proxy.proxy_process import EXE, start_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
async def hung_upstream(upstream_ca: trustme.CA) -> AsyncIterator[int]:
    """TLS on 127.0.0.1 that reads the request and never answers."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1").configure_cert(context)
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()
        await asyncio.wait_for(server.wait_closed(), 10)


async def test_a_hung_upstream_is_answered_504_and_recorded_as_an_upstream_timeout(
    vault: Vault, audit: AuditLog, home: Path, hung_upstream: int
) -> None:
    vault.add_service(make_service("hung", f"127.0.0.1:{hung_upstream}", local=True), validate_secret(SECRET))
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=(UpstreamTimeout(0.5),))
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        async with proxy_client(proxy, home) as client:
            response = await asyncio.wait_for(client.get(f"https://127.0.0.1:{hung_upstream}/v1/slow"), 20)
    finally:
        await proxy.stop()
    assert response.status_code == 504
    assert "upstream timeout" in response.text and "0.5 s" in response.text
    records = [json.loads(line) for line in (home / "audit.jsonl").read_bytes().splitlines()]
    [record] = [r for r in records if r.get("path") == "/v1/slow"]
    assert record["decision"] == "error" and record["reason"].startswith("upstream timeout"), record
    assert record["status"] == 504


def records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_bytes().splitlines()]


async def start(vault: Vault, audit: AuditLog, home: Path, *addons: object) -> EmbeddedProxy:
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=addons)
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    return proxy


async def chunks(total: int, size: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


async def test_a_content_length_over_the_bound_is_refused_413_before_the_body_is_read(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream
) -> None:
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    proxy = await start(vault, audit, home, RequestBodyLimit(1024 * 1024))
    try:
        raw = await RawClient.connect(proxy)
        target = f"127.0.0.1:{upstream.port}"
        assert (await raw.tunnel(target, home, sni="127.0.0.1")).status == 200
        head = f"POST /upload HTTP/1.1\r\nHost: {target}\r\nContent-Length: {8 * 1024**3}\r\n\r\n"
        refused = await raw.send(head.encode())  # 8 GiB announced, not one byte of it sent
        await raw.close()
    finally:
        await proxy.stop()
    assert refused.status == 413 and b"request body too large" in refused.body
    assert upstream.received == []
    [record] = [r for r in records(home) if r.get("path") == "/upload"]
    assert record["decision"] == "refused" and "request body too large" in str(record["reason"])


async def test_a_chunked_body_growing_past_the_bound_is_refused_413(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream
) -> None:
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    proxy = await start(vault, audit, home, RequestBodyLimit(1024 * 1024))
    url = f"https://127.0.0.1:{upstream.port}/upload"
    try:
        async with proxy_client(proxy, home) as client:
            small = await client.post(url, content=chunks(1000))
            try:
                big = await client.post(url, content=chunks(64 * 1024 * 1024))
                status, text = big.status_code, big.text
            except httpx.HTTPError:  # the proxy closed the connection while the client still sent
                status, text = 413, "request body too large (connection closed)"
    finally:
        await proxy.stop()
    assert small.status_code == 200
    assert status == 413 and "request body too large" in text
    assert len(upstream.received) == 1
    [refused] = [r for r in records(home) if r.get("path") == "/upload" and r.get("decision") != "injected"]
    assert "request body too large" in str(refused["reason"])


async def test_stopping_finishes_or_fails_what_is_in_flight_and_records_it(
    vault: Vault, audit: AuditLog, home: Path, hung_upstream: int
) -> None:
    vault.add_service(make_service("hung", f"127.0.0.1:{hung_upstream}", local=True), validate_secret(SECRET))
    draining = Draining()
    proxy = await start(vault, audit, home, draining)
    try:
        async with proxy_client(proxy, home) as client:
            waiting = asyncio.ensure_future(
                client.post(f"https://127.0.0.1:{hung_upstream}/v1/inflight", content=b"{}")
            )
            while draining.in_flight == 0:
                await asyncio.sleep(0.02)
            failed = await draining.drain(grace=0.3)
            stopped = await asyncio.wait_for(waiting, 10)
            refused = await client.get(f"https://127.0.0.1:{hung_upstream}/v1/after")
    finally:
        await proxy.stop()
    assert failed == 1
    assert stopped.status_code == 502 and "proxy was stopped" in stopped.text
    assert refused.status_code == 503 and "stopping" in refused.text
    by_path = {r.get("path"): r for r in records(home)}
    assert by_path["/v1/inflight"]["decision"] == "error"
    assert "proxy was stopped" in str(by_path["/v1/inflight"]["reason"])
    assert by_path["/v1/after"]["decision"] == "refused"


async def test_sigterm_to_the_standalone_proxy_fails_and_records_what_is_in_flight(
    vault: Vault, home: Path, hung_upstream: int
) -> None:
    vault.add_service(make_service("hung", f"127.0.0.1:{hung_upstream}", local=True), validate_secret(SECRET))
    env = {**os.environ, "CLAVIS_UPSTREAM_TIMEOUT": "0", "CLAVIS_STOP_GRACE_SECONDS": "0.5"}
    token = subprocess.run([EXE, "agent", "add", "bot"], env=env, capture_output=True, text=True, check=True)
    secret_token = token.stdout.strip().splitlines()[-1].split()[-1]
    running = start_proxy(env)
    try:
        trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
        proxy = httpx.Proxy(f"http://127.0.0.1:{running.port}", auth=("bot", secret_token))
        async with httpx.AsyncClient(proxy=proxy, verify=trust, trust_env=False, timeout=30) as client:
            waiting = asyncio.ensure_future(
                client.post(f"https://127.0.0.1:{hung_upstream}/v1/inflight", content=b"{}")
            )
            await asyncio.sleep(1.0)  # the request is at the hung upstream (no timing is asserted)
            running.process.send_signal(signal.SIGTERM)
            answered = await asyncio.wait_for(waiting, 20)
        code = running.process.wait(timeout=20)
        said = running.drain()
    finally:
        if running.process.poll() is None:
            running.process.kill()
    assert code == 0, said
    assert answered.status_code == 502 and "proxy was stopped" in answered.text
    assert "1 request(s) in flight" in said
    [record] = [r for r in records(home) if r.get("path") == "/v1/inflight"]
    assert record["decision"] == "error" and "proxy was stopped" in str(record["reason"])
