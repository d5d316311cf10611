"""Issue 20.15: a vault deleted or replaced under a running proxy stops its injecting, with a
clear error; the next ``init`` does not start a new vault over the old audit trail unasked."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Service, Vault
from demo.echo_upstream import EchoUpstream
from tests.conftest import proxy_client


def remove_vault(home: Path) -> None:
    for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
        (home / name).unlink(missing_ok=True)


@pytest.mark.anyio
@pytest.mark.e2e
@pytest.mark.parametrize("replaced", [False, True], ids=["deleted", "replaced"])
async def test_a_proxy_whose_vault_is_gone_stops_injecting(
    proxy: EmbeddedProxy, home: Path, local_service: Service, upstream: EchoUpstream, replaced: bool
) -> None:
    url = f"https://127.0.0.1:{upstream.port}/v1/x"
    async with proxy_client(proxy, home) as client:
        assert (await client.get(url)).status_code == 200
        remove_vault(home)
        if replaced:
            Vault.create(home).close()
        refused = await client.get(url)
    assert refused.status_code == 503
    assert "was deleted" in refused.text or "was replaced by another vault" in refused.text
    assert len(upstream.received) == 1
