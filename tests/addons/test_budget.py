"""The local budget through the real embedded proxy: calls beyond it never leave."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.limits.budget import Budget, set_budget
from demo.echo_upstream import EchoUpstream
from tests.conftest import proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_calls_beyond_the_budget_are_refused_with_the_time_to_retry(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, vault: Vault
) -> None:
    set_budget(vault, local_service.name, Budget(3, 3600.0))
    async with proxy_client(proxy, home) as client:
        responses = [await client.get(f"https://127.0.0.1:{upstream.port}/v1/x") for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    refused = responses[3]
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert "local budget of 'echo' (3 requests per 1h) is used up; retry in" in refused.text
    assert len(upstream.received) == 3


async def test_a_service_without_a_budget_is_not_counted(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service
) -> None:
    async with proxy_client(proxy, home) as client:
        responses = [await client.get(f"https://127.0.0.1:{upstream.port}/v1/x") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not (home / "budget-usage.db").exists()


async def test_a_budget_set_from_another_process_applies_to_the_next_request(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, vault: Vault
) -> None:
    async with proxy_client(proxy, home) as client:
        before = [await client.get(f"https://127.0.0.1:{upstream.port}/v1/x") for _ in range(2)]
        with Vault.open(home) as other:  # another connection, as the CLI in another process has
            set_budget(other, local_service.name, Budget(1, 3600.0))
        after = [await client.get(f"https://127.0.0.1:{upstream.port}/v1/x") for _ in range(2)]
        with Vault.open(home) as other:
            set_budget(other, local_service.name, None)
        lifted = await client.get(f"https://127.0.0.1:{upstream.port}/v1/x")
    assert [r.status_code for r in [*before, *after, lifted]] == [200, 200, 200, 429, 200]
