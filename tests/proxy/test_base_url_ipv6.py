"""A local service whose host is an IPv6 literal works in base-URL mode: the rewritten request
names it in brackets (`Host: [::1]:PORT`), as HTTP requires; without them the destination check
read `::1:PORT` as a malformed authority and refused every request (400)."""

from __future__ import annotations

import httpx
import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import PROXY_TOKEN, SECRET, make_service
from tests.proxy.upstreams import V6Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_service_on_an_ipv6_literal_is_reached_in_base_url_mode(
    vault: Vault, proxy: EmbeddedProxy, v6: V6Upstream
) -> None:
    vault.add_service(make_service("v6", f"[::1]:{v6.port}", local=True), validate_secret(SECRET))
    async with httpx.AsyncClient(base_url=f"{proxy.url}/s/v6", trust_env=False) as client:
        response = await client.get("/x", headers={"Authorization": f"Bearer {PROXY_TOKEN}"})
    assert response.status_code == 200, response.text
    assert v6.seen == [(f"[::1]:{v6.port}", f"Bearer {SECRET}")]
