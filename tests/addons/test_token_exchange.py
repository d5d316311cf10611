"""ExchangeToken keeps, per vault snapshot and service, whether there is a reference to resolve
or a token to exchange: a change to the service in the vault is seen on the next request."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from clavis_mcp.addons.flowmeta import SERVICE
from clavis_mcp.addons.token_exchange import ExchangeToken
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.refs import cache, parse, stored
from tests.conftest import SECRET, make_service

pytestmark = pytest.mark.anyio


def flow_for(service: str) -> http.HTTPFlow:
    flow = tflow.tflow(resp=False)
    flow.metadata[SERVICE] = service
    return flow


async def test_a_credential_turned_into_a_reference_is_resolved_on_the_next_request(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAVIS_TEST_MISSING_KEY", raising=False)
    cache.clear()
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    stage = ExchangeToken(vault)
    before = flow_for("api")
    await stage.request(before)
    assert before.response is None
    vault.set_secret("api", "credential", stored(parse("env://CLAVIS_TEST_MISSING_KEY")))
    after = flow_for("api")
    await stage.request(after)
    assert after.response is not None and after.response.status_code == 503


async def test_a_service_with_nothing_to_resolve_or_exchange_is_left_alone(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    stage = ExchangeToken(vault)
    flows = [flow_for("api") for _ in range(3)]
    for flow in flows:
        await stage.request(flow)
    assert all(flow.response is None for flow in flows)
