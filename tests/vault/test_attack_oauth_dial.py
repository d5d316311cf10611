"""Attack: a token endpoint checked at registration whose name later resolves to a private address.

The refresh token and client secret go to the token endpoint, so its dial gets the same check as
an API host's: resolve, refuse private and loopback addresses unless the service is local, and
dial the address that was checked, keeping the name for TLS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import trustme

from clavis_mcp.vault import Secret, Vault
from clavis_mcp.vault.dialing import Resolver
from clavis_mcp.vault.errors import TokenEndpointError
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant, validate_config
from clavis_mcp.vault.oauth.refresh import ensure_fresh
from tests.conftest import make_service
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
TOKEN_HOST = "auth.alpha.example"


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca, hostnames=(TOKEN_HOST,)) as s:
        yield s


def register_due(vault: Vault, server: OAuthServer, *, local: bool) -> None:
    """An OAuth service whose token URL names a public-looking host, with a token due for refresh."""
    service = make_service("acme", "api.alpha.example", local=local)
    token_url = f"https://{TOKEN_HOST}:{server.port}/token"
    config = validate_config(OAuthConfig(token_url, CLIENT_ID, "client_credentials"), service)  # passes: a name
    grant = TokenGrant(Secret("at-initial-0123456789abcdef"), time.time() - 1, None, None)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)


def resolving_to(address: str, seen: list[str]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        seen.append(host)
        return [address]

    return resolve


async def test_a_token_endpoint_that_now_resolves_to_loopback_gets_no_refresh_token(
    vault: Vault, server: OAuthServer
) -> None:
    register_due(vault, server, local=False)
    seen: list[str] = []
    with pytest.raises(TokenEndpointError, match="private or loopback address 127.0.0.1") as caught:
        await ensure_fresh(vault, "acme", resolver=resolving_to("127.0.0.1", seen))
    assert seen == [TOKEN_HOST]
    assert sum(server.state.hits.values()) == 0  # nothing was sent
    assert CLIENT_SECRET not in str(caught.value)


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.5", "100.64.0.1", "::1"])
async def test_a_token_endpoint_resolving_to_an_internal_range_is_refused(
    vault: Vault, server: OAuthServer, address: str
) -> None:
    register_due(vault, server, local=False)
    with pytest.raises(TokenEndpointError, match="was not contacted"):
        await ensure_fresh(vault, "acme", resolver=resolving_to(address, []))
    assert sum(server.state.hits.values()) == 0


async def test_a_local_service_dials_the_checked_address_and_keeps_the_name_for_tls(
    vault: Vault, server: OAuthServer
) -> None:
    register_due(vault, server, local=True)
    seen: list[str] = []
    fresh = await ensure_fresh(vault, "acme", resolver=resolving_to("127.0.0.1", seen))
    assert fresh is not None and fresh.reveal() != "at-initial-0123456789abcdef"
    assert seen == [TOKEN_HOST] and server.state.hits == {"client_credentials": 1}
