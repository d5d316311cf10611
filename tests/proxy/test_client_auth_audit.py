"""How proxy authentication reads in the audit log: git's bare first request is the challenge
round, not a refusal; a revoked agent is named, not "unauthenticated"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.agents import AgentTokens, add_agent, revoke_agent
from tests.conftest import PROXY_TOKEN, PROXY_USER, proxy_client
from tests.proxy.conftest import A_HOST, PROXY_AUTH, RawClient, Upstream, proxy_to

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


async def test_a_bare_first_request_then_the_credential_is_audited_as_a_challenge_round(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    """What git does: CONNECT without Proxy-Authorization, read the 407, CONNECT again with it."""
    async with proxy_to(services, audit, home, reflector) as proxy:
        bare = await RawClient.connect(proxy)
        first = await bare.tunnel(f"{A_HOST}:443", home, A_HOST, auth=None)
        await bare.close()
        assert first.status == 407 and first.headers["proxy-authenticate"] == 'Basic realm="clavis-mcp"'
        again = await RawClient.connect(proxy)
        assert (await again.tunnel(f"{A_HOST}:443", home, A_HOST, auth=PROXY_AUTH)).status == 200
        answer = await again.send(f"GET /v1 HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
        await again.close()
    assert answer.status == 200
    challenge, used = records(home)
    assert (challenge["decision"], challenge["status"], challenge["source"]) == ("challenge", 407, "unauthenticated")
    assert (used["decision"], used["source"]) == ("injected", PROXY_USER)


async def test_a_wrong_token_is_refused_naming_the_agent_it_claimed(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    async with proxy_to(services, audit, home, reflector) as proxy, proxy_client(proxy, home, (PROXY_USER, "x")) as c:
        with pytest.raises(httpx.ProxyError, match="407"):
            await c.get(f"https://{A_HOST}/v1")
    [refused] = records(home)
    assert refused["decision"] == "refused" and refused["source"] == "unauthenticated"
    assert f"agent {PROXY_USER!r}" in str(refused["reason"])


async def test_a_revoked_agent_is_named_in_the_record_on_a_new_connection_and_inside_its_tunnel(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    tokens = {PROXY_USER: PROXY_TOKEN}
    async with proxy_to(services, audit, home, reflector, lambda: tokens) as proxy:
        async with proxy_client(proxy, home) as open_tunnel:
            assert (await open_tunnel.get(f"https://{A_HOST}/one")).status_code == 200
            tokens.clear()  # `clavis-mcp agent revoke tester` in another terminal
            assert (await open_tunnel.get(f"https://{A_HOST}/two")).status_code == 407
        async with proxy_client(proxy, home) as fresh:
            with pytest.raises(httpx.ProxyError, match="407"):
                await fresh.get(f"https://{A_HOST}/three")
    _, inside, fresh_record = records(home)
    for record in (inside, fresh_record):
        assert record["decision"] == "refused" and record["source"] == PROXY_USER
        assert f"agent {PROXY_USER!r} was revoked" in str(record["reason"])
    assert [r.path for r in reflector.received] == ["/one"]


async def test_an_agent_revoked_in_the_vault_by_another_process_is_refused_inside_its_tunnel_and_by_base_url(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    """The standalone proxy's agents live in the vault (``AgentTokens``), read as of each request's
    snapshot: a revocation through another connection (another process) is seen by the next request."""
    token = add_agent(services, "sdk")
    async with proxy_to(services, audit, home, reflector, AgentTokens(services)) as proxy:
        base_url = httpx.AsyncClient(
            base_url=f"{proxy.url}/s/alpha", headers={"Authorization": f"Bearer {token}"}, trust_env=False
        )
        async with proxy_client(proxy, home, ("sdk", token)) as open_tunnel, base_url:
            assert (await open_tunnel.get(f"https://{A_HOST}/one")).status_code == 200
            assert (await base_url.get("/two")).status_code == 200
            assert (await base_url.get(f"/pasted/{token}")).status_code == 200  # recorded without it
            other = Vault.open(home)  # `clavis-mcp agent revoke sdk` in another terminal
            try:
                revoke_agent(other, "sdk")
            finally:
                other.close()
            assert (await open_tunnel.get(f"https://{A_HOST}/three")).status_code == 407
            assert (await base_url.get("/four")).status_code == 401
    assert [r.path for r in reflector.received] == ["/one", "/two", f"/pasted/{token}"]
    inside = next(r for r in records(home) if r.get("path") == "/three")
    assert inside["decision"] == "refused" and inside["source"] == "sdk"
    assert "/pasted/[REDACTED:agent-key]" in [r.get("path") for r in records(home)]
    assert token not in (home / "audit.jsonl").read_text()
