"""call_service through a real MCP session and the gateway's real proxy, on a host two services
share: each call gets the credential of the service it names, never the other's (issue 16.14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import make_service
from tests.proxy.conftest import SHARED_HOST, Upstream, routes_for

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PERSONAL = "sk-personal-4Hq8zT1mW6vB3nY7cK2pL9dR"
WORK = "sk-work-8Jx2cV5nQ1tZ7mB4wK9sF3gH"


async def test_each_call_gets_the_credential_of_the_service_it_names(
    vault: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    vault.add_service(make_service("personal-openai", SHARED_HOST), validate_secret(PERSONAL))
    vault.add_service(make_service("work-openai", SHARED_HOST), validate_secret(WORK))
    routes = routes_for(reflector)
    gateway = Gateway(
        vault, audit, LocalCA(home / "certs"), config=ProxyConfig(resolver=routes.resolve, extra_addons=(routes,))
    )
    async with Client(build_server(gateway)) as client:
        for name in ("work-openai", "personal-openai", "work-openai"):
            result = await client.call_tool(
                "call_service", {"service_name": name, "method": "GET", "url": f"https://{SHARED_HOST}/v1/models"}
            )
            assert not result.is_error, result.content
    assert reflector.credentials_seen() == [f"Bearer {WORK}", f"Bearer {PERSONAL}", f"Bearer {WORK}"]
    services = [r["service"] for r in audit.records() if r.get("host") == SHARED_HOST]
    assert services == ["work-openai", "personal-openai", "work-openai"]
