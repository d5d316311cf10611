"""Hosts no service owns: tunnelled opaquely by default for agents, refused for one that denies them.

Through the real proxy, built as the standalone ``clavis-mcp proxy`` builds it
(``pass_other_hosts``), with agents from the vault and real-looking names routed to a loopback
upstream that records every request it receives (issue 16.12).
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, HostRule, Vault, parse_host_rule, validate_secret
from clavis_mcp.vault.agents import AgentTokens, add_agent, agent_token
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import make_service
from tests.proxy.conftest import (
    A_HOST,
    PASSTHROUGH_HOST,
    PRIVATE_PASSTHROUGH_HOST,
    SECRET_A,
    SHARED_HOST,
    RawClient,
    Upstream,
    routes_for,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def start_proxy(
    vault: Vault, audit: AuditLog, home: Path, upstream: Upstream, passthrough: tuple[HostRule, ...] = ()
) -> EmbeddedProxy:
    routes = routes_for(upstream, {PRIVATE_PASSTHROUGH_HOST: "127.0.0.1"})
    config = ProxyConfig(
        tokens=AgentTokens(vault),
        extra_addons=(routes,),
        resolver=routes.resolve,
        passthrough=passthrough,
        pass_other_hosts=True,
    )
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    return proxy


@pytest.fixture
async def standalone(services: Vault, audit: AuditLog, home: Path, reflector: Upstream) -> AsyncIterator[EmbeddedProxy]:
    proxy = await start_proxy(services, audit, home, reflector)
    try:
        yield proxy
    finally:
        await proxy.stop()


def upstream_only(upstream_ca: trustme.CA) -> ssl.SSLContext:
    """Trust only the upstream's own CA: a tunnel that needs ours would be an interception."""
    trust = ssl.create_default_context()
    upstream_ca.configure_trust(trust)
    return trust


def as_agent(proxy: EmbeddedProxy, name: str, token: str, verify: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=(name, token)), verify=verify, trust_env=False)


def records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


async def test_a_host_no_service_owns_is_tunnelled_opaquely_without_a_credential(
    services: Vault, standalone: EmbeddedProxy, home: Path, reflector: Upstream, upstream_ca: trustme.CA
) -> None:
    token = add_agent(services, "dev")
    async with as_agent(standalone, "dev", token, upstream_only(upstream_ca)) as client:
        response = await client.get(f"https://{PASSTHROUGH_HOST}/simple", headers={"Authorization": "Bearer own"})
    assert response.status_code == 200
    assert "x-clavis-audit-id" not in response.headers  # nothing read the tunnel's content
    assert reflector.credentials_seen() == ["Bearer own"]
    assert not reflector.saw_any_secret()
    record = records(home)[-1]
    assert (record["decision"], record["source"], record["host"], record["method"]) == (
        "passed", "dev", PASSTHROUGH_HOST, "CONNECT",
    )  # fmt: skip
    assert "no service owns this host" in str(record["reason"])


async def test_an_agent_added_with_deny_other_hosts_is_refused_them(
    services: Vault, standalone: EmbeddedProxy, home: Path, reflector: Upstream, upstream_ca: trustme.CA
) -> None:
    token = add_agent(services, "strict", deny_other_hosts=True)
    async with as_agent(standalone, "strict", token, upstream_only(upstream_ca)) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://{PASSTHROUGH_HOST}/simple")
    assert reflector.received == []
    record = records(home)[-1]
    assert (record["decision"], record["source"]) == ("refused", "strict")
    assert "--deny-other-hosts" in str(record["reason"])


async def test_a_service_host_is_still_intercepted_and_injected(
    services: Vault, standalone: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    token = add_agent(services, "dev")
    ours = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
    async with as_agent(standalone, "dev", token, ours) as client:
        response = await client.get(f"https://{A_HOST}/v1")
    assert response.status_code == 200
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]
    assert records(home)[-1]["decision"] == "injected"


async def test_a_path_no_service_covers_on_a_service_host_is_refused_not_passed(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    """A host some service owns is never passthrough, even where a passthrough rule covers it."""
    services.add_service(make_service("shared-v1", SHARED_HOST, path_prefixes=("/v1",)),
                         validate_secret("v1-secret-0123456789abcdef"))  # fmt: skip
    add_agent(services, "dev")
    proxy = await start_proxy(services, audit, home, reflector, passthrough=(parse_host_rule(SHARED_HOST),))
    try:
        auth = "Basic " + base64.b64encode(f"dev:{agent_token(services, 'dev')}".encode()).decode()
        raw = await RawClient.connect(proxy)
        assert (await raw.tunnel(f"{SHARED_HOST}:443", home, sni=SHARED_HOST, auth=auth)).status == 200
        response = await raw.send(f"GET /other HTTP/1.1\r\nHost: {SHARED_HOST}\r\n\r\n".encode())
        await raw.close()
    finally:
        await proxy.stop()
    assert response.status == 403
    assert b"covers the path" in response.body
    assert reflector.received == []


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost", PRIVATE_PASSTHROUGH_HOST])
async def test_private_and_loopback_addresses_are_not_passed_through_by_default(
    services: Vault, standalone: EmbeddedProxy, home: Path, reflector: Upstream, upstream_ca: trustme.CA, target: str
) -> None:
    """Decision: the default passthrough keeps the private-address rule (an agent must not reach
    the user's LAN, loopback services or a cloud metadata address through the proxy): a literal is
    refused at CONNECT, a name that resolves to one by the dial guard."""
    token = add_agent(services, "dev")
    async with as_agent(standalone, "dev", token, upstream_only(upstream_ca)) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"https://{target}:{reflector.port}/simple")
    assert reflector.received == []  # 127.0.0.1:port is the upstream: only the checks kept it out
    if target != PRIVATE_PASSTHROUGH_HOST:  # a name's dial refusal is in the proxy log, not the audit (known gap)
        record = records(home)[-1]
        assert (record["decision"], record["status"]) == ("refused", 403)
        assert "private or loopback" in str(record["reason"])
