"""The real embedded mitmproxy between a real client and a real loopback HTTPS upstream."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from clavis_mcp.addons.ratelimits import RecordRateLimits
from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Service, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


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
    assert [r["decision"] for r in records] == ["injected", "challenge"]  # a bare request: the 407 round
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


async def test_a_stage_that_raises_on_the_response_withholds_it_and_the_refusal_is_audited(
    vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream, local_service: Service,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def broken(self: object, flow: object) -> None:
        raise RuntimeError(f"bug while holding {SECRET}")

    monkeypatch.setattr(RecordRateLimits, "response", broken)  # before the proxy binds its stages' hooks
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}))
    await proxy.start()
    try:
        async with proxy_client(proxy, home) as client:
            response = await client.get(f"https://127.0.0.1:{upstream.port}/v1/models")
    finally:
        await proxy.stop()
    assert response.status_code == 502
    assert "internal error (RuntimeError)" in response.text
    assert SECRET not in response.text and "[REDACTED" not in response.text  # the echo never came back
    record = json.loads((home / "audit.jsonl").read_text().splitlines()[-1])
    assert (record["decision"], record["status"]) == ("refused", 502)


async def test_an_unexpected_audit_failure_withholds_the_response(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, **fields: object) -> str:
        raise TypeError("not an AuditWriteError")

    monkeypatch.setattr(AuditLog, "append", broken)
    async with proxy_client(proxy, home) as client:
        response = await client.get(f"https://127.0.0.1:{upstream.port}/v1/models")
    assert response.status_code == 502
    assert "internal error (TypeError)" in response.text
    assert "/v1/models" not in response.text  # the upstream's echo was not passed on
