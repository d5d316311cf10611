"""Issue 20.12: the dial guard dials the first checked address that answers, so a name whose
first address is dead (here 127.0.0.2, where nothing listens on the upstream's port) still works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.dialing import first_reachable
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, make_service, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
NAME = "dual.example"
DEAD_FIRST = ["127.0.0.2", "127.0.0.1"]


@pytest.fixture
def dual(upstream_ca: trustme.CA) -> AsyncIterator[EchoUpstream]:
    with EchoUpstream.start(upstream_ca, hostnames=(NAME,)) as server:
        yield server


async def dead_address_first(host: str, port: int) -> list[str]:
    if host == NAME:
        return list(DEAD_FIRST)
    raise OSError(f"test resolver: unknown host {host}")


async def test_a_dead_first_address_falls_back_to_the_next_checked_one(
    vault: Vault, audit: AuditLog, home: Path, dual: EchoUpstream
) -> None:
    vault.add_service(make_service("dual", f"{NAME}:{dual.port}", local=True), validate_secret(SECRET))
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, resolver=dead_address_first)
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        async with proxy_client(proxy, home) as client:
            response = await client.get(f"https://{NAME}:{dual.port}/v1/x")
    finally:
        await proxy.stop()
    assert response.status_code == 200, response.text
    assert len(dual.received) == 1


async def test_first_reachable_returns_none_when_no_address_answers(dual: EchoUpstream) -> None:
    assert await first_reachable(DEAD_FIRST, dual.port) == "127.0.0.1"
    assert await first_reachable(["127.0.0.2", "127.0.0.3"], dual.port) is None
    assert await first_reachable(["127.0.0.2"], dual.port) == "127.0.0.2"  # one address: the dial reports it
