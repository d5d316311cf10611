"""A redactor built for what a service held before is not used for what it holds now.

The proxy keeps each service's redactor (a compiled scanner) between responses. It was rebuilt
only when the injected credential changed, so two changes left it stale: an OAuth refresh that
rotates the refresh token but returns the same access token (some providers do), and a new
basic-auth user name over the same key. An upstream reflecting the new refresh token, or the
new ``Authorization`` header, reached the agent in clear. Through the real embedded proxy, to an
HTTPS_PROXY agent, with a loopback upstream that echoes the request it received.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Secret, Vault, validate_secret
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.service import build_auth
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, make_service, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ACCESS = "at-unchanged-0123456789abcdefABCDEF"
FIRST_REFRESH, ROTATED_REFRESH = "rt-first-0123456789abcdefABCDEF", "rt-rotated-9876543210fedcbaFEDCBA"


async def scrubbed(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, name: str, headers: dict[str, str] | None = None
) -> bool:
    """Whether the request header ``name``, as the upstream echoed it, reached the agent as the marker
    alone (a bool, so that a failure prints no secret)."""
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"https://127.0.0.1:{upstream.port}/echo", headers=headers)
    assert response.status_code == 200
    echoed = {key.lower(): value for key, value in response.json()["headers"].items()}
    return echoed[name] == "[REDACTED:acme]"


async def test_a_refresh_token_rotated_under_the_same_access_token_is_not_reflected(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    service = make_service("acme", f"127.0.0.1:{upstream.port}", local=True)
    config = OAuthConfig("https://auth.acme.example/token", "client-id", "refresh_token")
    oauth_store.register(vault, service, config, None, TokenGrant(Secret(ACCESS), None, Secret(FIRST_REFRESH), None))
    assert await scrubbed(proxy, home, upstream, "x-echo", {"x-echo": FIRST_REFRESH})
    # the provider rotates the refresh token and hands back the same access token
    oauth_store.save_refreshed(vault, "acme", TokenGrant(Secret(ACCESS), None, Secret(ROTATED_REFRESH), None))
    assert await scrubbed(proxy, home, upstream, "x-echo", {"x-echo": ROTATED_REFRESH})


async def test_a_basic_auth_user_changed_over_the_same_key_is_not_reflected(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream
) -> None:
    service = replace(make_service("acme", f"127.0.0.1:{upstream.port}", local=True),
                      auth=build_auth("basic", template="first-user:{secret}"))  # fmt: skip
    vault.add_service(service, validate_secret(SECRET))
    assert await scrubbed(proxy, home, upstream, "authorization")
    vault.update_service(replace(service, auth=build_auth("basic", template="second-user:{secret}")))
    # the whole header is one spelling of the secret: a stale redactor catches only the key's
    # middle, inside the base64, and leaves the rest of it (and bits of the key's edges) behind
    assert await scrubbed(proxy, home, upstream, "authorization")
