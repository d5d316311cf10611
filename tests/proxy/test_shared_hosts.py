"""Several services on one host (a personal and a work key for one provider), through the real proxy.

call_service names its service (the selection header the gateway sends); a proxy agent's record
says which one it means (``uses``); a host claimed by several with no binding is refused with a
message naming them. A bound agent never gets another service's credential (issue 16.14).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.agents import AgentTokens, add_agent, use_services
from clavis_mcp.vault.proxy_config import ProxyConfig
from clavis_mcp.vault.proxy_headers import SELECT_HEADER
from tests.conftest import make_service, running_proxy
from tests.proxy.conftest import SHARED_HOST, Upstream, routes_for

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PERSONAL = "sk-personal-4Hq8zT1mW6vB3nY7cK2pL9dR"
WORK = "sk-work-8Jx2cV5nQ1tZ7mB4wK9sF3gH"


@pytest.fixture
def shared(vault: Vault) -> Vault:
    vault.add_service(make_service("personal-openai", SHARED_HOST), validate_secret(PERSONAL))
    vault.add_service(make_service("work-openai", SHARED_HOST), validate_secret(WORK))
    return vault


@pytest.fixture
async def proxy(shared: Vault, audit: AuditLog, home: Path, reflector: Upstream) -> AsyncIterator[EmbeddedProxy]:
    routes = routes_for(reflector)
    config = ProxyConfig(
        tokens=AgentTokens(shared), extra_addons=(routes,), resolver=routes.resolve, pass_other_hosts=True
    )
    async with running_proxy(shared, audit, home, config) as p:
        yield p


def client(proxy: EmbeddedProxy, home: Path, name: str, token: str) -> httpx.AsyncClient:
    trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
    return httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=(name, token)), verify=trust, trust_env=False)


def last_record(home: Path) -> dict[str, object]:
    return dict(json.loads((home / "audit.jsonl").read_text().splitlines()[-1]))


async def test_an_agent_bound_to_one_service_gets_only_its_credential(
    shared: Vault, proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    token = add_agent(shared, "work-agent", uses=("work-openai",))
    async with client(proxy, home, "work-agent", token) as http:
        assert (await http.get(f"https://{SHARED_HOST}/v1/models")).status_code == 200
        assert (await http.get(f"https://{SHARED_HOST}/v1/other")).status_code == 200
    assert reflector.credentials_seen() == [f"Bearer {WORK}", f"Bearer {WORK}"]
    assert last_record(home)["service"] == "work-openai"


async def test_a_shared_host_without_a_binding_is_refused_naming_the_choices(
    shared: Vault, proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    token = add_agent(shared, "dev")
    async with client(proxy, home, "dev", token) as http:
        response = await http.get(f"https://{SHARED_HOST}/v1/models")
    assert response.status_code == 403
    assert "'personal-openai', 'work-openai'" in response.text
    assert "clavis-mcp agent use dev SERVICE" in response.text
    assert reflector.received == []
    assert last_record(home)["decision"] == "refused"


async def test_changing_the_binding_applies_to_the_next_request_without_restart(
    shared: Vault, proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    token = add_agent(shared, "dev", uses=("work-openai",))
    async with client(proxy, home, "dev", token) as http:
        await http.get(f"https://{SHARED_HOST}/one")
        use_services(shared, "dev", ("personal-openai",))  # `clavis-mcp agent use dev personal-openai`
        await http.get(f"https://{SHARED_HOST}/two")
    assert reflector.credentials_seen() == [f"Bearer {WORK}", f"Bearer {PERSONAL}"]


@pytest.mark.parametrize(("named", "secret"), [("personal-openai", PERSONAL), ("work-openai", WORK)])
async def test_a_request_naming_its_service_gets_that_service_credential(
    shared: Vault, proxy: EmbeddedProxy, home: Path, reflector: Upstream, named: str, secret: str
) -> None:
    """What call_service sends (the selection header): the named service's credential, never the other's."""
    token = add_agent(shared, "dev")
    async with client(proxy, home, "dev", token) as http:
        response = await http.get(f"https://{SHARED_HOST}/v1", headers={SELECT_HEADER: named})
    assert response.status_code == 200
    assert reflector.credentials_seen() == [f"Bearer {secret}"]
    assert last_record(home)["service"] == named


async def test_a_bound_agent_cannot_name_the_other_service_of_its_host(
    shared: Vault, proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    token = add_agent(shared, "work-agent", uses=("work-openai",))
    async with client(proxy, home, "work-agent", token) as http:
        response = await http.get(f"https://{SHARED_HOST}/v1", headers={SELECT_HEADER: "personal-openai"})
    assert response.status_code == 403
    assert "bound to service 'work-openai'" in response.text
    assert reflector.received == []
    assert PERSONAL not in (home / "audit.jsonl").read_text()


async def test_a_bound_agent_does_not_fall_through_to_another_service_by_path(
    vault: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    """Bound to the /v1 service of a host another service owns whole: other paths are refused, not
    sent with the other service's credential."""
    vault.add_service(make_service("scoped", SHARED_HOST, path_prefixes=("/v1",)), validate_secret(WORK))
    vault.add_service(make_service("whole", SHARED_HOST), validate_secret(PERSONAL))
    token = add_agent(vault, "scoped-agent", uses=("scoped",))
    routes = routes_for(reflector)
    config = ProxyConfig(tokens=AgentTokens(vault), extra_addons=(routes,), resolver=routes.resolve)
    p = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await p.start()
    try:
        async with client(p, home, "scoped-agent", token) as http:
            assert (await http.get(f"https://{SHARED_HOST}/v1/x")).status_code == 200
            assert (await http.get(f"https://{SHARED_HOST}/v2/x")).status_code == 403
    finally:
        await p.stop()
    assert reflector.credentials_seen() == [f"Bearer {WORK}"]
