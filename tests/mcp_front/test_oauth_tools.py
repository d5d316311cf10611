"""The MCP tools on an OAuth service, through a real in-memory MCP session and the real proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme
from mcp import Client

from clavis_mcp.mcp_front.settings import ServiceSettings, parse_probe, save_settings
from clavis_mcp.vault import Secret, Vault
from tests.oauth_server import OAuthServer, register_expired

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


@pytest.fixture
def expired(vault: Vault, server: OAuthServer) -> Secret:
    return register_expired(vault, server)


def text_of(result: object) -> str:
    return " ".join(getattr(c, "text", "") for c in getattr(result, "content", []))


async def test_get_credentials_refreshes_an_expired_token_first(
    client: Client, server: OAuthServer, expired: Secret
) -> None:
    result = await client.call_tool("get_credentials", {"service_name": "acme"})
    assert not result.is_error, text_of(result)
    (current,) = server.state.access
    assert result.structured_content["fingerprint"] == Secret(current).fingerprint
    assert server.state.hits == {"refresh_token": 1}
    assert current not in str(result) and expired.reveal() not in str(result)


async def test_a_dead_grant_is_reported_with_the_login_command(
    client: Client, server: OAuthServer, expired: Secret
) -> None:
    server.state.revoke_refresh_tokens()
    got = await client.call_tool("get_credentials", {"service_name": "acme"})
    assert got.is_error and "clavis-mcp oauth login acme" in text_of(got)
    status = await client.call_tool("check_credential_status", {"service_name": "acme"})
    assert status.structured_content["state"] == "reauth_required"
    assert "clavis-mcp oauth login acme" in status.structured_content["detail"]
    assert server.state.hits == {"refresh_token": 1}


async def test_a_live_check_goes_out_with_a_fresh_token(
    client: Client, server: OAuthServer, expired: Secret, vault: Vault
) -> None:
    save_settings(vault, "acme", ServiceSettings(probe=parse_probe("GET /api/me")))
    status = await client.call_tool("check_credential_status", {"service_name": "acme", "live": True})
    assert not status.is_error, text_of(status)
    assert status.structured_content["state"] == "valid"
    assert status.structured_content["rate_limit"]["remaining"] == 4999
    assert server.state.hits == {"refresh_token": 1}


async def test_an_oauth_token_states_its_expiry_in_iso_time_words_and_seconds(
    client: Client, server: OAuthServer, expired: Secret
) -> None:
    before = (await client.call_tool("check_credential_status", {"service_name": "acme"})).structured_content
    assert before["expired"] is True and before["seconds_to_expiry"] < 0 and before["expiry"].startswith("expired ")
    assert before["expires_at"].endswith("Z")
    assert not (await client.call_tool("get_credentials", {"service_name": "acme"})).is_error  # refreshes it
    after = (await client.call_tool("check_credential_status", {"service_name": "acme"})).structured_content
    assert after["expired"] is False and after["seconds_to_expiry"] > 0 and after["expiry"].startswith("expires in ")
