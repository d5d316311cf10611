"""OAuth services through the real embedded proxy: the injected token is always a fresh one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Secret, Vault
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from demo.echo_upstream import EchoUpstream
from tests.conftest import make_service, proxy_client
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer, register_expired

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


@pytest.fixture
def expired(vault: Vault, server: OAuthServer) -> Secret:
    return register_expired(vault, server)


def tokens_in_play(server: OAuthServer) -> list[str]:
    values = [v for body in server.state.token_bodies for v in json.loads(body).values() if isinstance(v, str)]
    return [v for v in values if v.startswith(("at-", "rt-"))] + [CLIENT_SECRET]


async def test_an_expired_token_is_refreshed_before_the_request_leaves(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    async with proxy_client(proxy, home) as client:
        response = await client.get(server.base + "/api/me")
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert server.state.hits == {"refresh_token": 1}
    assert expired.reveal() not in server.state.api_calls
    seen = response.text + str(response.headers) + (home / "audit.jsonl").read_text()
    for value in tokens_in_play(server):  # SECURITY-CASES 24: the token response stays in the vault
        assert value not in seen


async def test_concurrent_requests_on_an_expired_token_share_one_refresh(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    """SECURITY-CASES 33 through the proxy: exactly one refresh; every request succeeds."""
    server.state.delay = 0.2
    async with proxy_client(proxy, home) as client:
        responses = await asyncio.gather(*(client.get(server.base + "/api/me") for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert server.state.hits == {"refresh_token": 1}
    assert len(set(server.state.api_calls)) == 1


async def test_a_401_refreshes_once_and_the_next_request_carries_the_new_token(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    async with proxy_client(proxy, home) as client:
        assert (await client.get(server.base + "/api/me")).status_code == 200
        server.state.expire_access_tokens()  # the provider revokes the token early
        rejected = await client.get(server.base + "/api/me")
        again = await client.get(server.base + "/api/me")
    assert rejected.status_code == 401  # passed back as the provider said; not replayed
    assert again.status_code == 200
    assert server.state.hits == {"refresh_token": 2}
    assert server.state.api_calls[1] != server.state.api_calls[2]


async def test_a_dead_grant_is_refused_at_the_proxy_with_the_fix(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    """SECURITY-CASES 34: no stale token leaves, no retry storm, the agent reads what to do."""
    server.state.revoke_refresh_tokens()
    async with proxy_client(proxy, home) as client:
        responses = [await client.get(server.base + "/api/me") for _ in range(3)]
    assert [r.status_code for r in responses] == [401] * 3
    assert "clavis-mcp oauth login acme" in responses[0].text
    assert server.state.api_calls == []
    assert server.state.hits == {"refresh_token": 1}


async def test_a_down_token_endpoint_with_an_expired_token_is_a_503_with_the_reason(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    server.state.down = True
    async with proxy_client(proxy, home) as client:
        response = await client.get(server.base + "/api/me")
    assert response.status_code == 503 and "token endpoint" in response.text
    assert server.state.api_calls == []


async def test_the_refresh_token_and_client_secret_are_scrubbed_from_responses(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, vault: Vault, upstream: EchoUpstream
) -> None:
    """DESIGN 6: besides the injected token, an OAuth service's refresh token and client secret."""
    service = make_service("echo-oauth", f"127.0.0.1:{upstream.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", (), server.authorize_url)
    refresh = server.state.issue_refresh_token()
    grant = TokenGrant(Secret("at-valid-0123456789abcdef"), time.time() + 3600, Secret(refresh), None)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
    async with proxy_client(proxy, home) as client:
        response = await client.get(
            f"https://127.0.0.1:{upstream.port}/echo", headers={"X-Note": refresh, "X-Other": CLIENT_SECRET}
        )
    assert response.status_code == 200
    assert refresh not in response.text and CLIENT_SECRET not in response.text
    echoed = response.json()["headers"]
    assert echoed["X-Note"] == echoed["X-Other"] == "[REDACTED:echo-oauth]"


def oauth_records(home: Path) -> list[dict[str, object]]:
    lines = (home / "audit.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("action") == "oauth-refresh"]


async def test_each_token_endpoint_call_is_audited_without_a_token(
    proxy: EmbeddedProxy, home: Path, server: OAuthServer, expired: Secret
) -> None:
    async with proxy_client(proxy, home) as client:
        await asyncio.gather(*(client.get(server.base + "/api/me") for _ in range(5)))
        server.state.revoke_refresh_tokens()
        server.state.expire_access_tokens()
        for _ in range(3):
            await client.get(server.base + "/api/me")
    records = oauth_records(home)
    assert [(r["decision"], r["reason"]) for r in records] == [
        ("refreshed", "due"),
        ("reauth_required", "the provider answered invalid_grant"),
    ]
    assert all(r["service"] == "acme" and r["source"] == "oauth" for r in records)
    text = (home / "audit.jsonl").read_text()
    for value in tokens_in_play(server):
        assert value not in text
