"""SECURITY-CASES 33 with real processes: two standalone proxies and this process, many requests
each, all on an expired OAuth token at the same moment: exactly one refresh, every request served."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import Secret, Vault
from clavis_mcp.vault.agents import add_agent
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.oauth.refresh import ensure_fresh
from tests.conftest import make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer
from tests.proxy.proxy_process import start_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


async def test_two_proxies_and_this_process_refresh_an_expired_token_once(
    vault: Vault, server: OAuthServer, home: Path
) -> None:
    service = make_service("acme", f"127.0.0.1:{server.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", (), server.authorize_url)
    grant = TokenGrant(Secret("at-expired-0123456789abcdef"), 0.0, Secret(server.state.issue_refresh_token()), None)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
    agent_token = add_agent(vault, "racer")
    ca = LocalCA(home / "certs").ensure()  # made once, before two proxies would race to make it
    proxies = [start_proxy(os.environ.copy()) for _ in range(2)]
    ports = [p.port for p in proxies]
    try:
        server.state.delay = 0.5  # the refresh is in flight while everyone else asks
        trust = ssl.create_default_context(cafile=str(ca.cert_path))
        clients = [
            httpx.AsyncClient(proxy=httpx.Proxy(f"http://127.0.0.1:{port}", auth=("racer", agent_token)),
                              verify=trust, trust_env=False, timeout=30)
            for port in ports
        ]  # fmt: skip
        try:
            requests = [c.get(server.base + "/api/me") for c in clients for _ in range(10)]
            local = [ensure_fresh(vault, "acme") for _ in range(10)]
            results = await asyncio.gather(*requests, *local)
        finally:
            for c in clients:
                await c.aclose()
    finally:
        for p in proxies:
            p.process.terminate()
        for p in proxies:
            p.process.wait(timeout=30)
    responses, tokens = results[:20], results[20:]
    assert [r.status_code for r in responses] == [200] * 20  # type: ignore[union-attr]
    assert server.state.hits == {"refresh_token": 1}
    assert len(set(server.state.api_calls)) == 1
    assert {t.reveal() for t in tokens} == set(server.state.api_calls)  # type: ignore[union-attr]
