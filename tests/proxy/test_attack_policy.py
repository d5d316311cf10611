"""Attacks on a service's path and method policy (SECURITY-CASES principle 41), end to end.

The service ``alpha`` is limited to ``/v1/public`` and to GET and POST. Each request below is one
a server would read as another path or another method than the one the policy judged; the proxy
must refuse it before the credential leaves, so the routed upstream records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import make_service, proxy_client
from tests.proxy.conftest import A_HOST, SECRET_A, RawClient, Upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def limited(services: Vault) -> Vault:
    services.remove_service("alpha")
    services.add_service(make_service("alpha", A_HOST, path_prefixes=("/v1/public",), methods=("GET", "POST")),
                         validate_secret(SECRET_A))  # fmt: skip
    return services


async def send_raw(proxy: EmbeddedProxy, home: Path, target: bytes) -> int:
    """One GET with ``target`` exactly as written on the request line, inside alpha's tunnel."""
    raw = await RawClient.connect(proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(b"GET " + target + f" HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    return response.status


PATH_BYPASSES = [
    ("dot-dot-path-parameter", b"/v1/public/..;/admin"),
    ("encoded-dot-dot-path-parameter", b"/v1/public/%2e%2e;/admin"),
    ("path-parameters-twice", b"/v1/public/..;x=1/..;/internal"),
    ("empty-segment-path-parameter", b"/v1/public/;/../admin"),
    ("encoded-semicolon", b"/v1/public/..%3b/admin"),
    ("double-encoded-dot-dot", b"/v1/public/%252e%252e/admin"),
    ("double-encoded-slash", b"/v1/public%252f..%252fadmin"),
    ("double-encoded-backslash", b"/v1/public%255c..%255cadmin"),
    ("overlong-dot", b"/v1/public/%c0%ae%c0%ae/admin"),
    ("overlong-slash", b"/v1/public%c0%af..%c0%afadmin"),
    ("overlong-dot-three-bytes", b"/v1/public/%e0%80%ae%e0%80%ae/admin"),
    ("iis-u-escape", b"/v1/public/%u002e%u002e/admin"),
    ("fullwidth-dots", b"/v1/public/%ef%bc%8e%ef%bc%8e/admin"),
    ("dot-dot-trailing-space", b"/v1/public/..%20/admin"),
    ("dot-dot-tab", b"/v1/public/..%09/admin"),
]


@pytest.mark.parametrize("target", [c[1] for c in PATH_BYPASSES], ids=[c[0] for c in PATH_BYPASSES])
async def test_path_policy_bypass_spellings_never_reach_the_upstream(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, target: bytes
) -> None:
    assert await send_raw(routed_proxy, home, target) == 400
    assert reflector.received == []


async def test_a_plain_path_under_the_prefix_still_passes(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    assert await send_raw(routed_proxy, home, b"/v1/public/items") == 200
    assert [r.path for r in reflector.received] == ["/v1/public/items"]


OVERRIDES: list[tuple[str, dict[str, Any]]] = [
    ("x-http-method-override", {"headers": {"X-HTTP-Method-Override": "DELETE"}}),
    ("x-http-method", {"headers": {"X-HTTP-Method": "DELETE"}}),
    ("x-method-override", {"headers": {"X-Method-Override": "DELETE"}}),
    ("override-header-with-underscores", {"headers": {"X_HTTP_Method_Override": "delete"}}),
    ("query-parameter", {"params": {"_method": "DELETE"}}),
    ("form-field", {"data": {"name": "x", "_method": "DELETE"}}),
    ("json-member", {"json": {"_method": "DELETE"}}),
    ("multipart-field", {"data": {"_method": "DELETE"}, "files": {"f": ("a.txt", b"x")}}),
]


@pytest.mark.parametrize("extra", [c[1] for c in OVERRIDES], ids=[c[0] for c in OVERRIDES])
async def test_method_override_bypasses_never_reach_the_upstream(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, extra: Mapping[str, Any]
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.post(f"https://{A_HOST}/v1/public/items", **extra)
    assert response.status_code == 405
    assert "allows only the methods GET, POST" in response.text and "asks for DELETE" in response.text
    assert reflector.received == []


async def test_an_override_naming_an_allowed_method_passes(
    limited: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.post(f"https://{A_HOST}/v1/public/items", headers={"X-HTTP-Method-Override": "GET"})
    assert response.status_code == 200
    assert ("X-HTTP-Method-Override", "GET") in reflector.received[0].headers


async def test_overrides_are_left_alone_where_no_method_policy_is_set(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.post(
            f"https://{A_HOST}/v1?_method=DELETE", headers={"X-HTTP-Method-Override": "DELETE"}
        )
    assert response.status_code == 200
    assert reflector.received[0].path == "/v1?_method=DELETE"
    assert ("X-HTTP-Method-Override", "DELETE") in reflector.received[0].headers
