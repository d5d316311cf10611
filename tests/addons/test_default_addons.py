"""Each field of a ProxyConfig reaches the addon that reads it, through ``default_addons`` alone.

This is the seam of issue 13 item 4: a new option is a field of the config and one line where
the addons are built, not a parameter threaded through the gateway, the embedded proxy and the
standalone proxy (tests/mcp_front/test_gateway_config.py shows those hand the config on whole).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import trustme
from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from clavis_mcp.addons import ClientAuth, DestinationCheck, DialGuard, RedactResponse, default_addons
from clavis_mcp.addons.flowmeta import DECISION, REASON, SERVICE
from clavis_mcp.addons.oauth_refresh import RefreshOAuthToken
from clavis_mcp.vault import AuditLog, Vault, parse_host_rule, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.bombs import MIB, bomb
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, make_service
from tests.oauth_server import OAuthServer, register_expired

pytestmark = pytest.mark.anyio


def stage[Stage](vault: Vault, audit: AuditLog, config: ProxyConfig, kind: type[Stage]) -> Stage:
    """The one addon of ``kind`` among those the proxy would run for ``config``."""
    (found,) = [addon for addon in default_addons(vault, audit, config) if isinstance(addon, kind)]
    return found


def basic(user: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()


def connect_to(host: str) -> http.HTTPFlow:
    flow = tflow.tflow(resp=False)
    flow.request.method, flow.request.host, flow.request.port = "CONNECT", host, 443
    return flow


def test_the_config_tokens_are_the_clients_the_proxy_admits(vault: Vault, audit: AuditLog) -> None:
    admitting = stage(vault, audit, ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}), ClientAuth)
    default = stage(vault, audit, ProxyConfig(), ClientAuth)
    assert admitting.authenticate(basic(PROXY_USER, PROXY_TOKEN)) == PROXY_USER
    assert default.authenticate(basic(PROXY_USER, PROXY_TOKEN)) is None  # no tokens: no one gets in


def test_a_config_passthrough_host_is_tunnelled_and_others_are_refused(vault: Vault, audit: AuditLog) -> None:
    check = stage(vault, audit, ProxyConfig(passthrough=(parse_host_rule("*.example.org"),)), DestinationCheck)
    with taddons.context(check):
        passed, refused = connect_to("cdn.example.org"), connect_to("cdn.example.net")
        check.http_connect(passed)
        check.http_connect(refused)
    assert passed.metadata[DECISION] == "passed" and passed.response is None
    assert refused.response is not None and refused.response.status_code == 403


async def test_the_config_resolver_is_what_the_dial_guard_asks(vault: Vault, audit: AuditLog) -> None:
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["10.0.0.5"]

    guard = stage(vault, audit, ProxyConfig(resolver=resolver), DialGuard)
    server = connection.Server(address=("api.example.com", 443))
    client = connection.Client(peername=("127.0.0.1", 5000), sockname=("127.0.0.1", 8899), timestamp_start=0)
    await guard.server_connect(server_hooks.ServerConnectionHookData(server=server, client=client))
    assert asked == [("api.example.com", 443)]
    assert server.error is not None and "private or loopback address 10.0.0.5" in server.error


@pytest.fixture
def oauth(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as server:
        yield server


async def test_the_config_resolver_is_what_an_oauth_refresh_asks(
    vault: Vault, audit: AuditLog, oauth: OAuthServer
) -> None:
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    register_expired(vault, oauth)
    refresh = stage(vault, audit, ProxyConfig(resolver=resolver), RefreshOAuthToken)
    with taddons.context(refresh):
        flow = tflow.tflow(resp=False)
        flow.metadata[SERVICE] = "acme"
        await refresh.request(flow)
    assert flow.response is None and oauth.state.hits == {"refresh_token": 1}
    assert asked == [("127.0.0.1", oauth.port)]


async def test_the_config_decode_bound_is_the_redactor_s(vault: Vault, audit: AuditLog) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    redact = stage(vault, audit, ProxyConfig(max_decoded=MIB), RedactResponse)
    with taddons.context(redact):
        flow = tflow.tflow(resp=True)
        flow.metadata[SERVICE] = "api"
        assert flow.response is not None
        flow.response.headers["content-encoding"] = "br"
        flow.response.raw_content = bomb("br", 2)
        await redact.response(flow)
    assert flow.response.status_code == 502
    assert "decodes to more than 1 MiB" in flow.metadata[REASON]
