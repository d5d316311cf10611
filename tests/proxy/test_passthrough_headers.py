"""A request passed through to a host no service owns leaves without any of our ``X-Clavis-*`` headers.

The agent's ``X-Clavis-Call``, ``X-Clavis-Agent`` (its key, for the base-URL front) and every other
header in the namespace, in any case and ``-``/``_``/``.`` spelling, are for the proxy only: through
the real proxy, a plain-HTTP absolute-form request to a passthrough host reaches a loopback upstream
that records what it received.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.agents import AgentTokens, add_agent
from clavis_mcp.vault.proxy_config import ProxyConfig
from clavis_mcp.vault.proxy_headers import is_internal
from demo.echo_upstream import Received
from tests.proxy.conftest import PASSTHROUGH_HOST
from tests.proxy.routing import LoopbackRoutes
from tests.proxy.upstreams import Reflector

pytestmark = [pytest.mark.anyio]

OURS = {
    "X-Clavis-Call": "call-1",
    "x-clavis-audit-id": "forged",
    "X_Clavis_Refused": "forged",
    "X.CLAVIS.Anything": "forged",
}


@pytest.fixture
def plain_upstream() -> Iterator[tuple[int, list[Received]]]:
    received: list[Received] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Reflector,), {"received": received}))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


def test_every_spelling_of_the_namespace_is_internal() -> None:
    for name in (*OURS, "X-Clavis-Agent", "x_clavis-service", "X-CLAVIS-TARGET"):
        assert is_internal(name), name
    for name in ("X-Clavisx", "Clavis-Call", "X-Forwarded-For", "Authorization", "X-Clavi-s"):
        assert not is_internal(name), name


@pytest.mark.e2e
async def test_plain_http_passthrough_sends_none_of_our_headers(
    services: Vault, audit: AuditLog, home: Path, plain_upstream: tuple[int, list[Received]]
) -> None:
    port, received = plain_upstream
    routes = LoopbackRoutes({PASSTHROUGH_HOST: port})
    config = ProxyConfig(
        tokens=AgentTokens(services), extra_addons=(routes,), resolver=routes.resolve, pass_other_hosts=True
    )
    proxy = EmbeddedProxy(services, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    token = add_agent(services, "dev")
    try:
        async with httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=("dev", token)), trust_env=False) as client:
            answer = await client.get(
                f"http://{PASSTHROUGH_HOST}/plain", headers={**OURS, "X-Clavis-Agent": token, "X-Kept": "yes"}
            )
    finally:
        await proxy.stop()
    assert answer.status_code == 200
    assert len(received) == 1
    sent = received[0].headers
    assert ("X-Kept", "yes") in sent  # the agent's own headers go through as they were
    assert [name for name, _ in sent if is_internal(name) or name.lower() == "proxy-authorization"] == []
    assert token not in repr(sent)
