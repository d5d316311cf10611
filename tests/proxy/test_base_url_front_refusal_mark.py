"""Review 7, L1b: the base-URL front's own early refusals (a head too large, 431; a head it cannot
read, 400) carry ``X-Clavis-Refused`` as a stage's refusal does, so that a client tells them from
the provider's answer; call_service showed such a 431 as the provider's, ``isError: false``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_headers import REFUSED_HEADER
from tests.proxy.conftest import RawClient
from tests.proxy.front_upstream import FrontUpstream, front_upstream
from tests.proxy.test_base_url_front import front, in_process

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

REASON = "request refused: malformed request head"


@pytest.fixture
def upstream(routed_leaf: trustme.LeafCert) -> Iterator[FrontUpstream]:
    with front_upstream(routed_leaf) as up:
        yield up


@pytest.mark.parametrize(
    ("rest", "status"),
    [(f"X-Pad: {'p' * 70000}\r\n\r\n", 431), ("Bad Header Line\r\n\r\n", 400)],
    ids=["head-too-long", "bad-header-line"],
)
async def test_an_unreadable_head_on_a_connection_is_answered_marked_as_the_fronts_refusal(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, rest: str, status: int
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(f"GET /s/alpha/v1 HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n{rest}".encode())
    assert response.status == status and response.headers.get(REFUSED_HEADER.lower()) == REASON
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"X-Pad": "p" * 70_000}, 431), ({"X-Split": "a\r\nInjected: 1"}, 400)],
    ids=["head-too-long", "crlf-in-a-field"],
)
async def test_an_unreadable_head_handed_over_in_process_is_answered_marked_as_the_fronts_refusal(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, headers: dict[str, str], status: int
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, in_process(proxy) as client:
        answer = await client.get("/v1/echo", headers=headers)
    assert answer.status_code == status and answer.headers.get(REFUSED_HEADER) == REASON
    assert upstream.seen == []
