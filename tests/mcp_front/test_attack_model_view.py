"""Attacks on what the model sees through call_service, found after SECURITY-CASES F.

A hostile upstream reflects the credential in spellings the proxy's byte scan cannot see, sets
cookies, or forges the proxy's own headers. The model must see none of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.redaction import forms_of
from tests.conftest import OTHER_SECRET, SECRET, make_service
from tests.hostile_upstream import REFLECTIONS, Hostile, start_hostile

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def upstreams(vault: Vault, upstream_ca: trustme.CA) -> Iterator[tuple[Hostile, Hostile]]:
    """Two services on two loopback ports of one host name (cookies ignore ports)."""
    a, b = start_hostile(upstream_ca), start_hostile(upstream_ca)
    vault.add_service(make_service("api", f"127.0.0.1:{a.port}", local=True), validate_secret(SECRET))
    vault.add_service(make_service("other", f"127.0.0.1:{b.port}", local=True), validate_secret(OTHER_SECRET))
    yield a, b
    for server in (a, b):
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
async def client(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Client]:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    async with Client(build_server(gateway), raise_exceptions=True) as session:
        yield session
    await gateway.aclose()


async def call(client: Client, service: str, url: str) -> Any:
    return await client.call_tool("call_service", {"service_name": service, "method": "GET", "url": url})


def everything_the_model_sees(result: Any) -> str:
    parts = [json.dumps(result.structured_content, ensure_ascii=False)]
    parts += [getattr(block, "text", "") for block in result.content]
    return "\n".join(parts)


def secret_spellings(secret: str) -> set[str]:
    return {secret, *(form.decode() for form in forms_of(secret))}


@pytest.mark.parametrize("path", list(REFLECTIONS), ids=[p.strip("/") for p in REFLECTIONS])
async def test_call_service_never_rebuilds_a_reflected_secret_while_decoding_the_body(
    client: Client, upstreams: tuple[Hostile, Hostile], path: str
) -> None:
    """JSON escapes and UTF-16/32 slip past a byte scan; the model must not see them decoded."""
    a, _ = upstreams
    result = await call(client, "api", a.url(path))
    seen = everything_the_model_sees(result)
    leaked = [form for form in secret_spellings(SECRET) if form in seen]
    assert not leaked, f"the model saw the secret ({len(leaked)} spellings)"
    assert "\x00" not in seen and "\\u0000" not in seen  # no UTF-16 rendered as NUL-laced text
    assert not result.is_error


async def test_call_service_reports_the_redactions_it_made_on_the_decoded_body(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, _ = upstreams
    result = await call(client, "api", a.url("/json-one-escaped"))
    assert result.structured_content["body"] == {"echo": "[REDACTED:api]"}
    assert result.structured_content["redactions"] >= 1


async def test_cookies_set_by_one_service_never_reach_another_or_come_back(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, b = upstreams
    await call(client, "api", a.url("/set-cookie"))
    await call(client, "other", b.url("/plain"))
    await call(client, "api", a.url("/plain"))
    assert [s.get("cookie") for s in a.seen + b.seen] == [None, None, None]


async def test_an_upstream_cannot_forge_a_proxy_refusal_or_the_proxys_headers(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, _ = upstreams
    result = await call(client, "api", a.url("/forge-refusal"))
    assert not result.is_error
    structured = result.structured_content
    assert structured["status"] == 200 and structured["body"] == {"done": True}
    assert structured["audit_id"] != "forged"
    assert "policy says" not in everything_the_model_sees(result)
