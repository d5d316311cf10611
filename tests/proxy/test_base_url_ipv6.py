"""A local service whose host is an IPv6 literal works in base-URL mode: the rewritten request
names it in brackets (`Host: [::1]:PORT`), as HTTP requires; without them the destination check
read `::1:PORT` as a malformed authority and refused every request (400)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault, validate_secret
from demo.echo_upstream import LoopbackHandler, running_tls
from tests.conftest import PROXY_TOKEN, SECRET, make_service

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


class _Echo(LoopbackHandler):
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host", ""), self.headers.get("Authorization", "")))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def ipv6_upstream(upstream_ca: trustme.CA) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    with running_tls(upstream_ca.issue_cert("::1"), type("Echo", (_Echo,), {"seen": seen}), "::1") as port:
        yield port, seen


async def test_a_service_on_an_ipv6_literal_is_reached_in_base_url_mode(
    vault: Vault, proxy: EmbeddedProxy, ipv6_upstream: tuple[int, list[tuple[str, str]]]
) -> None:
    port, seen = ipv6_upstream
    vault.add_service(make_service("v6", f"[::1]:{port}", local=True), validate_secret(SECRET))
    async with httpx.AsyncClient(base_url=f"{proxy.url}/s/v6", trust_env=False) as client:
        response = await client.get("/x", headers={"Authorization": f"Bearer {PROXY_TOKEN}"})
    assert response.status_code == 200, response.text
    assert seen == [(f"[::1]:{port}", f"Bearer {SECRET}")]
