"""SECURITY-CASES.md section F: the MCP front end, on both protocol paths, with the real proxy.

35. call_service refuses bad URLs before any network activity, saying what is allowed.
36. call_service headers that try to set credentials or routing are stripped and reported.
37. No tool result carries raw request headers or the secret; reveals follow the policy, audited.
38. Malformed requests, unknown tools and wrong argument types are errors; the server stays up.
(The stdio subprocess side of 38, with bytes that are not JSON, is in tests/test_stdio_e2e.py.)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from mcp import Client
from mcp.shared.exceptions import MCPError

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from tests.conftest import OTHER_SECRET, SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def encodings(secret: str) -> list[str]:
    """The secret in every form a careless echo could carry it."""
    raw = secret.encode()
    return [secret, quote(secret, safe=""), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode(),
            binascii.hexlify(raw).decode(), json.dumps(secret)[1:-1]]  # fmt: skip


@pytest.fixture(params=["legacy", "auto"], ids=["handshake", "2026-07-28"])
async def client(request: pytest.FixtureRequest, gateway: Gateway) -> AsyncIterator[Client]:
    async with Client(build_server(gateway), mode=request.param) as session:
        yield session


@pytest.fixture
def gateway(vault: Vault, audit: AuditLog, home: Path) -> Gateway:
    return Gateway(vault, audit, LocalCA(home / "certs"))


@pytest.fixture
def api(vault: Vault, upstream_ca: trustme.CA) -> Iterator[ScriptedUpstream]:
    """Service ``api`` on one loopback upstream, service ``other`` (another secret) on another."""
    first, second = ScriptedUpstream.start(upstream_ca), ScriptedUpstream.start(upstream_ca)
    vault.add_service(make_service("api", f"127.0.0.1:{first.port}", local=True), validate_secret(SECRET))
    vault.add_service(make_service("other", f"127.0.0.1:{second.port}", local=True), validate_secret(OTHER_SECRET))
    yield first
    first.stop()
    second.stop()


def dump(result: Any) -> str:
    return json.dumps(result.model_dump())


# -- 35 --------------------------------------------------------------------------------------------

BAD_URLS = [
    ("host-not-bound", "https://api.openai.com/v1/models", "is not a host of service 'api'"),
    ("other-services-host", "https://127.0.0.1:1/x", "is not a host of service 'api'"),
    ("file-scheme", "file:///etc/passwd", "only absolute https:// URLs"),
    ("ftp-scheme", "ftp://127.0.0.1/x", "only absolute https:// URLs"),
    ("gopher-scheme", "gopher://127.0.0.1/x", "only absolute https:// URLs"),
    ("userinfo", "https://user:pw@127.0.0.1/x", "user information"),
    ("userinfo-host-trick", "https://127.0.0.1@evil.test/x", "user information"),
    ("malformed-port", "https://127.0.0.1:99999/x", "malformed URL"),
    ("malformed-ipv6", "https://[::1/x", "malformed URL"),
    ("relative", "/v1/models", "only absolute https:// URLs"),
    ("plain-http", "http://127.0.0.1/x", "plain http://"),
]


@pytest.mark.parametrize(("url", "message"), [r[1:] for r in BAD_URLS], ids=[r[0] for r in BAD_URLS])
async def test_f35_bad_urls_are_refused_before_any_network_activity(
    client: Client, api: ScriptedUpstream, gateway: Gateway, url: str, message: str
) -> None:
    result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
    assert result.is_error
    text = result.content[0].text
    assert message in text and f"accepts https:// URLs on: 127.0.0.1:{api.port}" in text
    assert api.received == []
    assert not gateway.proxy_running  # the proxy was never even started
    assert not [r for r in gateway.audit.records() if r.get("source") == "mcp" and r.get("action") is None]


# -- 36 --------------------------------------------------------------------------------------------

HOSTILE_HEADERS = [
    ("authorization", {"Authorization": "Bearer agent-key"}),
    ("authorization-lower", {"authorization": "Bearer agent-key"}),
    ("host", {"Host": "evil.test"}),
    ("proxy-authorization", {"Proxy-Authorization": "Basic bWNwOmd1ZXNz"}),
    ("service-selection", {"X-Clavis-Service": "other"}),
    ("service-selection-case", {"x-clavis-SERVICE": "other"}),
    ("cookie", {"Cookie": "session=1"}),
    ("forwarded", {"Forwarded": "for=1.2.3.4", "X-Forwarded-Host": "evil.test"}),
]


@pytest.mark.parametrize("headers", [r[1] for r in HOSTILE_HEADERS], ids=[r[0] for r in HOSTILE_HEADERS])
async def test_f36_controlled_headers_are_stripped_and_reported(
    client: Client, api: ScriptedUpstream, headers: dict[str, str]
) -> None:
    result = await client.call_tool(
        "call_service",
        {"service_name": "api", "method": "GET", "url": api.url("/echo"), "headers": {**headers, "Accept": "x/y"}},
    )
    assert not result.is_error, result.content
    assert sorted(result.structured_content["ignored_headers"]) == sorted(headers)
    [seen] = api.received
    sent = {name.lower(): value for name, value in seen.headers}
    assert sent["authorization"] == f"Bearer {SECRET}" and sent["accept"] == "x/y"
    assert sent["host"] == f"127.0.0.1:{api.port}"
    assert not {"proxy-authorization", "x-clavis-service", "cookie", "forwarded", "x-forwarded-host"} & set(sent)
    for value in encodings(OTHER_SECRET):
        assert value not in json.dumps(seen.headers)


async def test_f36_header_with_a_line_break_is_refused_not_split(client: Client, api: ScriptedUpstream) -> None:
    result = await client.call_tool(
        "call_service",
        {"service_name": "api", "method": "GET", "url": api.url("/echo"),
         "headers": {"X-Note": "a\r\nAuthorization: Bearer mine"}},
    )  # fmt: skip
    assert result.is_error and "line break" in result.content[0].text
    assert api.received == []


# -- 37 --------------------------------------------------------------------------------------------


async def test_f37_tool_results_carry_no_secret_and_no_raw_request_headers(
    client: Client, api: ScriptedUpstream, gateway: Gateway
) -> None:
    results = [
        await client.call_tool("list_services", {}),
        await client.call_tool("check_credential_status", {"service_name": "api"}),
        await client.call_tool("get_credentials", {"service_name": "api"}),
        await client.call_tool(
            "call_service", {"service_name": "api", "method": "POST", "url": api.url("/echo"), "json": {"echo": "me"}}
        ),  # fmt: skip
        await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": api.url("/headers")}),
        await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": api.url("/status/500")}),
    ]
    echoed = results[3].structured_content
    assert echoed["body"]["headers"]["Authorization"] == "[REDACTED:api]"
    assert "Proxy-Authorization" not in json.dumps(echoed) and "X-Clavis" not in json.dumps(echoed)
    text = "".join(dump(r) for r in results) + json.dumps(list(gateway.audit.records()))
    for value in encodings(SECRET) + encodings(OTHER_SECRET):
        assert value not in text


POLICIES = [
    pytest.param("never", False, "refused", id="never"),
    pytest.param("masked", False, "masked", id="masked"),
    pytest.param("full", True, "revealed", id="full", marks=pytest.mark.reveals_secret),
]


@pytest.mark.parametrize(("policy", "shows_value", "decision"), POLICIES)
async def test_f37_get_credentials_honours_the_reveal_policy_and_audits_every_reveal(
    client: Client, vault: Vault, gateway: Gateway, policy: str, shows_value: bool, decision: str
) -> None:
    vault.add_service(make_service("svc", "api.svc.test", reveal=policy), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "svc"})
    assert (SECRET in dump(result)) is shows_value
    assert result.is_error is (policy == "never")
    [record] = [r for r in gateway.audit.records() if r.get("action") == "reveal"]
    assert (record["service"], record["decision"], record["source"]) == ("svc", decision, "mcp")
    assert SECRET not in json.dumps(record)


# -- 38 --------------------------------------------------------------------------------------------

WRONG_ARGUMENTS = [
    ("unknown-tool", "no_such_tool", {}),
    ("url-not-a-string", "call_service", {"service_name": "api", "method": "GET", "url": 5}),
    ("method-not-in-enum", "call_service", {"service_name": "api", "method": "FETCH", "url": "https://x.test/"}),
    ("headers-not-an-object", "call_service", {"service_name": "api", "method": "GET", "url": "https://x.test/",
                                               "headers": ["Authorization"]}),
    ("missing-required", "call_service", {"service_name": "api"}),
    ("service-name-pattern", "get_credentials", {"service_name": "../etc"}),
    ("live-not-a-boolean", "check_credential_status", {"service_name": "api", "live": "maybe"}),
]  # fmt: skip


@pytest.mark.parametrize(("tool", "arguments"), [r[1:] for r in WRONG_ARGUMENTS], ids=[r[0] for r in WRONG_ARGUMENTS])
async def test_f38_wrong_calls_are_errors_and_the_server_stays_up(
    client: Client, api: ScriptedUpstream, tool: str, arguments: dict[str, Any]
) -> None:
    try:
        result = await client.call_tool(tool, arguments)
    except MCPError as exc:  # a protocol error (e.g. invalid params on the 2026-07-28 path) is fine too
        assert exc.error.message
    else:
        assert result.is_error
    assert api.received == []
    after = await client.call_tool("list_services", {})
    assert not after.is_error and [s["name"] for s in after.structured_content["services"]] == ["api", "other"]
