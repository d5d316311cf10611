"""The real embedded mitmproxy between a real client and a real loopback HTTPS upstream."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from demo.echo_upstream import EchoUpstream
from proxy import EmbeddedProxy
from tests.conftest import SECRET, proxy_client
from vault import Service

pytestmark = pytest.mark.anyio


def auth_headers_seen(upstream: EchoUpstream) -> list[str]:
    return [v for r in upstream.received for k, v in r.headers if k.lower() == "authorization"]


async def test_credential_is_injected_and_scrubbed_from_the_echo(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service
) -> None:
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://127.0.0.1:{upstream.port}/v1/models")
    assert response.status_code == 200
    assert auth_headers_seen(upstream) == [f"Bearer {SECRET}"]
    assert SECRET not in response.text
    assert json.loads(response.text)["headers"]["Authorization"] == "[REDACTED:echo]"
    assert response.headers["x-clavis-redactions"] == "1"


async def test_client_without_proxy_credential_gets_407_and_nothing_is_sent(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service
) -> None:
    for auth in (None, ("tester", "wrong-token"), ("nobody", "proxy-token-for-tests-0123456789")):
        async with proxy_client(proxy, home, auth=auth) as client:
            with pytest.raises(httpx.ProxyError, match="407"):
                await client.get(f"https://127.0.0.1:{upstream.port}/v1/models")
    assert upstream.received == []


async def test_plain_http_proxy_request_without_credential_gets_407(
    proxy: EmbeddedProxy, home: Path, local_service: Service
) -> None:
    async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
        response = await client.get("http://127.0.0.1:9/anything")
    assert response.status_code == 407
    assert "Proxy-Authenticate" in response.headers


async def test_host_owned_by_no_service_is_refused_with_a_reason(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, vault: object
) -> None:
    async with proxy_client(proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://127.0.0.1:{upstream.port}/")
        response = await client.get(f"http://127.0.0.1:{upstream.port}/")
    assert response.status_code == 403
    assert "no service is registered" in response.text
    assert upstream.received == []


async def test_every_request_is_audited_without_secrets(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service
) -> None:
    async with proxy_client(proxy, home) as client:
        ok = await client.get(f"https://127.0.0.1:{upstream.port}/v1/x?api_key={SECRET}")
    async with proxy_client(proxy, home, auth=None) as client:
        with pytest.raises(httpx.ProxyError):
            await client.get(f"https://127.0.0.1:{upstream.port}/v1/x")
    text = (home / "audit.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["decision"] for r in records] == ["injected", "refused"]
    assert records[0]["id"] == ok.headers["x-clavis-audit-id"]
    assert records[0]["path"] == "/v1/x?api_key="
    assert records[1]["status"] == 407
    assert SECRET not in text


async def test_audit_log_that_cannot_be_written_refuses_the_request(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service
) -> None:
    (home / "audit.jsonl").unlink(missing_ok=True)
    (home / "audit.jsonl").mkdir()  # a directory where the log should be: every write fails
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://127.0.0.1:{upstream.port}/v1/models")
    assert response.status_code == 503
    assert "audit log" in response.text
    assert upstream.received == []
