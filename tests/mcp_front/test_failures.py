"""A failure of clavis itself is a tool error that names the cause and the fix, carries the audit
id, and is recorded as ``error`` with that cause; a provider's own failure stays its answer.

Real failing upstreams on loopback, through the real embedded proxy and a real MCP session:
a certificate from a CA nobody trusts, a name that resolves nowhere, a closed port, an answer
that never comes, a body that breaks off.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import CallLimits
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.proxy.routing import LoopbackRoutes

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
AUDIT_ID = re.compile(r"\(audit id ([0-9a-f]+)\)")
ROUTES = LoopbackRoutes({}, {"intranet.example": "127.0.0.1"})  # every other name resolves nowhere


@asynccontextmanager
async def session(vault: Vault, audit: AuditLog, home: Path, timeout: float = 10.0) -> AsyncIterator[Client]:
    gateway = Gateway(
        vault, audit, LocalCA(home / "certs"), config=ProxyConfig(resolver=ROUTES.resolve),
        limits=CallLimits(timeout=timeout, max_response_body=1024),
    )  # fmt: skip
    async with Client(build_server(gateway)) as client:
        yield client


async def call(client: Client, service: str, url: str) -> Any:
    return await client.call_tool("call_service", {"service_name": service, "method": "GET", "url": url})


def failure(result: Any, audit: AuditLog) -> tuple[str, dict[str, Any]]:
    """The tool error's text and the audit record it names."""
    assert result.is_error, result.structured_content
    text = result.content[0].text
    found = AUDIT_ID.search(text)
    assert found, text
    record = next(r for r in audit.records() if r["id"] == found.group(1))
    return text, record


async def test_untrusted_upstream_certificate_is_a_tls_error_naming_clavis_upstream_ca(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    stranger = ScriptedUpstream.start(trustme.CA())  # a CA that nothing trusts
    try:
        vault.add_service(make_service("self-signed", f"127.0.0.1:{stranger.port}", local=True),
                          validate_secret(SECRET))  # fmt: skip
        async with session(vault, audit, home) as client:
            text, record = failure(await call(client, "self-signed", stranger.url("/echo")), audit)
    finally:
        stranger.stop()
    assert "(tls)" in text and "CLAVIS_UPSTREAM_CA" in text
    assert "502" not in text.replace(record["id"], "<audit id>")  # (a random hex id may hold "502")
    assert record["decision"] == "error" and record["reason"].startswith("tls: ")
    assert stranger.received == []


async def test_name_that_does_not_resolve_is_a_dns_error(vault: Vault, audit: AuditLog, home: Path) -> None:
    vault.add_service(make_service("nowhere", "api.nowhere.example"), validate_secret(SECRET))
    async with session(vault, audit, home) as client:
        text, record = failure(await call(client, "nowhere", "https://api.nowhere.example/v1"), audit)
    assert "(dns)" in text and "does not resolve" in text
    assert record["decision"] == "error" and record["reason"].startswith("dns: ")


async def test_closed_port_is_a_connect_error(vault: Vault, audit: AuditLog, home: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    vault.add_service(make_service("closed", f"127.0.0.1:{port}", local=True), validate_secret(SECRET))
    async with session(vault, audit, home) as client:
        text, record = failure(await call(client, "closed", f"https://127.0.0.1:{port}/"), audit)
    assert "(connect)" in text and "nothing accepted the connection" in text
    assert record["decision"] == "error" and record["reason"].startswith("connect: ")


async def test_upstream_that_never_answers_times_out_and_is_recorded_as_an_error(
    vault: Vault, audit: AuditLog, home: Path, scripted: ScriptedUpstream
) -> None:
    async with session(vault, audit, home, timeout=0.5) as client:
        text, record = failure(await call(client, "api", scripted.url("/slow")), audit)
    assert "did not answer within 0.5 s" in text and "CLAVIS_CALL_TIMEOUT" in text
    assert record["decision"] == "error" and record["reason"].startswith("client gave up")


async def test_body_that_breaks_off_is_a_reset_error(
    vault: Vault, audit: AuditLog, home: Path, scripted: ScriptedUpstream
) -> None:
    async with session(vault, audit, home) as client:
        text, record = failure(await call(client, "api", scripted.url("/cut")), audit)
    assert "(reset)" in text
    assert record["decision"] == "error" and record["reason"].startswith("reset: ")


async def test_private_address_is_refused_by_policy_with_its_audit_id(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    vault.add_service(make_service("intranet", "intranet.example"), validate_secret(SECRET))
    async with session(vault, audit, home) as client:
        text, record = failure(await call(client, "intranet", "https://intranet.example/"), audit)
    assert "refused" in text and "private or loopback address" in text
    assert record["decision"] == "refused"


async def test_provider_502_page_stays_the_providers_answer(
    vault: Vault, audit: AuditLog, home: Path, scripted: ScriptedUpstream
) -> None:
    async with session(vault, audit, home) as client:
        result = await call(client, "api", scripted.url("/html502"))
    assert not result.is_error
    out = result.structured_content
    assert out["status"] == 502 and "Bad Gateway" in out["body"]
    record = next(r for r in audit.records() if r["id"] == out["audit_id"])
    assert (record["decision"], record["status"]) == ("injected", 502)


async def test_a_call_cut_short_by_stopping_the_server_is_recorded_before_the_proxy_stops(
    vault: Vault, audit: AuditLog, home: Path, scripted: ScriptedUpstream
) -> None:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), limits=CallLimits(timeout=30))
    call = asyncio.create_task(gateway.fetch("api", "POST", scripted.url("/slow")))
    while not scripted.received:  # the request has left with the credential
        await asyncio.sleep(0.02)
    call.cancel()  # as the server cancels the calls still in flight when it stops
    with contextlib.suppress(asyncio.CancelledError):
        await call
    await gateway.aclose()
    (record,) = [r for r in audit.records() if r.get("path") == "/slow"]
    assert record["decision"] == "error" and record["reason"].startswith("client gave up")
