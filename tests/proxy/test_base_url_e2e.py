"""Base-URL mode end to end: a plain-HTTP client on loopback, the real embedded proxy, a real
HTTPS upstream (the hostile reflector) behind a real-looking name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import PROXY_TOKEN, PROXY_USER, make_service, proxy_client
from tests.proxy.conftest import (
    A_HOST,
    B_HOST,
    SECRET_A,
    SECRET_B,
    SHARED_HOST,
    WILD_DOMAIN,
    RawClient,
    Upstream,
    routes_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def base(proxy: EmbeddedProxy, service: str = "alpha") -> str:
    return f"{proxy.url}/s/{service}"


def client(proxy: EmbeddedProxy, service: str = "alpha", key: str | None = PROXY_TOKEN) -> httpx.AsyncClient:
    """As an SDK is configured: a base URL and the agent key as its API key (no proxy, no CA)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=base(proxy, service), headers=headers, trust_env=False)


def records(vault: Vault) -> list[dict[str, Any]]:
    return list(AuditLog.for_vault(vault).records())


async def test_sdk_style_base_url_gets_the_answer_with_the_key_injected_and_the_echo_redacted(
    routed_proxy: EmbeddedProxy, services: Vault, home: Path, reflector: Upstream
) -> None:
    async with client(routed_proxy) as c:
        response = await c.post("/v1/chat/completions?x=1", json={"model": "m"})
        again = await c.get("/v1/models")
    assert response.status_code == again.status_code == 200
    seen = response.json()
    assert seen["path"] == "/v1/chat/completions?x=1"
    assert seen["headers"]["Host"] == A_HOST
    assert seen["headers"]["Authorization"] == "[REDACTED:alpha]"
    assert SECRET_A not in response.text and PROXY_TOKEN not in response.text
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"] * 2
    assert PROXY_TOKEN not in repr([(r.path, r.headers) for r in reflector.received])


async def test_x_api_key_and_the_agent_header_carry_the_key_too(
    routed_proxy: EmbeddedProxy, reflector: Upstream
) -> None:
    async with httpx.AsyncClient(base_url=base(routed_proxy, "beta"), trust_env=False) as c:
        by_api_key = await c.get("/v1", headers={"x-api-key": PROXY_TOKEN})
        by_agent_header = await c.get("/v1", headers={"X-Clavis-Agent": PROXY_TOKEN})
    assert by_api_key.status_code == by_agent_header.status_code == 200
    assert reflector.credentials_seen() == [SECRET_B] * 2
    assert "beta_key" not in by_api_key.text


async def test_agent_key_in_the_path_for_url_only_tools_never_reaches_upstream_nor_audit(
    routed_proxy: EmbeddedProxy, services: Vault, home: Path, reflector: Upstream
) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        response = await c.get(f"{routed_proxy.url}/a/{PROXY_TOKEN}/s/alpha/v1/models")
    assert response.status_code == 200
    assert [r.path for r in reflector.received] == ["/v1/models"]
    assert PROXY_TOKEN not in (home / "audit.jsonl").read_text()
    assert records(services)[-1]["source"] == PROXY_USER


@pytest.mark.parametrize("key", [None, "wrong-token", SECRET_A])
async def test_missing_or_wrong_agent_key_is_401_and_nothing_is_dialled(
    routed_proxy: EmbeddedProxy, services: Vault, home: Path, reflector: Upstream, key: str | None
) -> None:
    async with client(routed_proxy, key=key) as c:
        response = await c.get("/v1/models")
    assert response.status_code == 401
    assert "agent key" in response.text and "clavis-mcp env --base-urls" in response.text
    assert reflector.received == []
    assert records(services)[-1]["status"] == 401
    assert SECRET_A not in (home / "audit.jsonl").read_text()


@pytest.mark.parametrize("path", [f"/a/{PROXY_TOKEN}/v1/models", f"/a/{PROXY_TOKEN}", f"/a/{PROXY_TOKEN}/s/"])
async def test_a_malformed_agent_key_url_is_400_and_the_key_is_not_audited(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, path: str
) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        response = await c.get(f"{routed_proxy.url}{path}")
    assert response.status_code == 400
    assert reflector.received == []
    assert PROXY_TOKEN not in (home / "audit.jsonl").read_text()


async def test_unknown_service_is_404_with_a_reason(routed_proxy: EmbeddedProxy, reflector: Upstream) -> None:
    async with client(routed_proxy, service="nope") as c:
        response = await c.get("/v1")
    assert response.status_code == 404
    assert "no service named 'nope'" in response.text
    assert reflector.received == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/s/alpha@evil.test/v1", 403),  # a host that is not the service's
        (f"/s/alpha@{B_HOST}/v1", 403),  # another service's host
        ("/s/alpha@[::1]:99999/v1", 400),
        ("/s//v1", 400),
        ("/a/", 400),
        (f"/a/{PROXY_TOKEN}/v1", 400),
    ],
)
async def test_host_choice_cannot_leave_the_service(
    routed_proxy: EmbeddedProxy, reflector: Upstream, path: str, status: int
) -> None:
    async with httpx.AsyncClient(trust_env=False, headers={"X-Clavis-Agent": PROXY_TOKEN}) as c:
        response = await c.get(f"{routed_proxy.url}{path}")
    assert response.status_code == status, response.text
    assert reflector.received == []


@pytest.mark.parametrize(
    "tail",
    [
        "/http://evil.test/v1",
        "//evil.test/v1",
        "/../../s/beta/v1",
        "/%2e%2e/%2e%2e/evil.test/",
        "/@evil.test/v1",
    ],
)
async def test_traversal_and_absolute_urls_in_the_path_stay_on_the_service_host(
    routed_proxy: EmbeddedProxy, reflector: Upstream, tail: str
) -> None:
    async with RawClient.connected(routed_proxy) as raw:
        head = f"GET /s/alpha{tail} HTTP/1.1\r\nHost: 127.0.0.1:{routed_proxy.port}\r\n"
        response = await raw.send(f"{head}X-Clavis-Agent: {PROXY_TOKEN}\r\n\r\n".encode())
    assert response.status in (200, 400, 403)
    for received in reflector.received:
        assert dict(received.headers)["Host"] == A_HOST


async def test_a_wildcard_host_is_reached_only_when_named(routed_proxy: EmbeddedProxy, reflector: Upstream) -> None:
    async with httpx.AsyncClient(trust_env=False, headers={"X-Clavis-Agent": PROXY_TOKEN}) as c:
        named = await c.get(f"{routed_proxy.url}/s/beta@files.{WILD_DOMAIN}/v1")
    assert named.status_code == 200
    assert [dict(r.headers)["Host"] for r in reflector.received] == [f"files.{WILD_DOMAIN}"]


async def test_a_path_owned_by_another_service_on_a_shared_host_is_refused(
    services: Vault, routed_proxy: EmbeddedProxy, reflector: Upstream
) -> None:
    services.add_service(make_service("shared-a", SHARED_HOST, path_prefixes=("/a",)), validate_secret(SECRET_A))
    services.add_service(make_service("shared-b", SHARED_HOST, path_prefixes=("/b",)), validate_secret(SECRET_B))
    async with httpx.AsyncClient(trust_env=False, headers={"X-Clavis-Agent": PROXY_TOKEN}) as c:
        own = await c.get(f"{routed_proxy.url}/s/shared-a/a/x")
        other = await c.get(f"{routed_proxy.url}/s/shared-a/b/x")
    assert own.status_code == 200
    assert other.status_code == 403 and "belongs to service 'shared-b'" in other.text
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]


async def test_sse_streams_through_redacted(routed_proxy: EmbeddedProxy, reflector: Upstream) -> None:
    async with client(routed_proxy) as c, c.stream("GET", "/sse") as response:
        assert response.status_code == 200
        text = "".join([chunk async for chunk in response.aiter_text()])
    assert "[DONE]" in text
    assert SECRET_A not in text and "[REDACTED:alpha]" in text


async def test_base_url_requests_are_audited_like_mitm_ones(
    routed_proxy: EmbeddedProxy, services: Vault, home: Path, reflector: Upstream
) -> None:
    async with client(routed_proxy) as c:
        await c.get("/v1/models")
    record = records(services)[-1]
    assert (record["source"], record["service"], record["decision"], record["status"]) == (
        PROXY_USER,
        "alpha",
        "injected",
        200,
    )
    assert record["host"] == A_HOST
    assert PROXY_TOKEN not in (home / "audit.jsonl").read_text()


class CountDials:
    def __init__(self) -> None:
        self.dials = 0

    def server_connected(self, data: object) -> None:
        self.dials += 1


@pytest.mark.parametrize("mode", ["mitm", "base-url"])
async def test_one_upstream_connection_serves_a_keep_alive_client(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream, mode: str
) -> None:
    routes = routes_for(reflector)
    counter = CountDials()
    config = ProxyConfig(
        tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=(routes, counter), resolver=routes.resolve
    )
    proxy = EmbeddedProxy(services, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        if mode == "mitm":
            async with proxy_client(proxy, home) as c:
                for _ in range(5):
                    assert (await c.get(f"https://{A_HOST}/v1/models")).status_code == 200
        else:
            async with client(proxy) as c:
                for _ in range(5):
                    assert (await c.get("/v1/models")).status_code == 200
    finally:
        await proxy.stop()
    assert len(reflector.received) == 5
    assert counter.dials == 1


async def test_mitm_mode_is_unchanged_for_the_proxy_port_itself(routed_proxy: EmbeddedProxy) -> None:
    async with httpx.AsyncClient(trust_env=False) as c:
        response = await c.get(f"{routed_proxy.url}/v1/models")
    assert response.status_code == 407
    assert "Proxy-Authenticate" in response.headers  # a proxy challenge: only /s/ and /a/ are base-URL paths


async def test_an_agent_key_sent_as_a_query_parameter_is_dropped_before_the_upstream(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    """SDKs that send their API key as ``?key=`` send the agent's token there (review finding 4)."""
    async with client(routed_proxy) as c:
        response = await c.get("/v1/models", params={"key": PROXY_TOKEN, "page": "2"})
    assert response.status_code == 200
    assert [r.path for r in reflector.received] == ["/v1/models?page=2"]
    assert PROXY_TOKEN not in (home / "audit.jsonl").read_text()


async def test_an_agent_key_elsewhere_in_the_query_is_refused_and_not_audited(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with client(routed_proxy) as c:
        response = await c.get("/v1/models", params={"q": f"x{PROXY_TOKEN}"})
    assert response.status_code == 400 and "query string" in response.text
    assert reflector.received == []
    assert PROXY_TOKEN not in (home / "audit.jsonl").read_text()
