"""The MCP server through a real in-memory MCP client session, with the real embedded proxy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client

from certs import LocalCA
from demo.echo_upstream import EchoUpstream
from mcp_front import Gateway, build_server
from tests.conftest import SECRET, make_service
from vault import AuditLog, Service, Vault, validate_secret

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Client]:
    server = build_server(Gateway(vault, audit, LocalCA(home / "certs")))
    async with Client(server, mode="legacy") as session:
        yield session


async def test_tools_are_listed_with_output_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert list(tools) == ["list_services", "get_credentials", "check_credential_status", "call_service"]
    for tool in tools.values():
        assert tool.output_schema is not None, tool.name
    assert tools["list_services"].annotations.read_only_hint is True
    assert tools["get_credentials"].annotations.read_only_hint is False
    assert "value" not in json.dumps(tools["list_services"].output_schema["$defs"]["ServiceInfo"]["properties"])


async def test_list_services_never_shows_a_value(client: Client, local_service: Service) -> None:
    result = await client.call_tool("list_services", {})
    assert not result.is_error
    assert result.structured_content["services"][0]["name"] == "echo"
    assert SECRET not in json.dumps(result.model_dump())


async def test_call_service_injects_and_the_model_sees_it_redacted(
    client: Client, local_service: Service, upstream: EchoUpstream, home: Path
) -> None:
    result = await client.call_tool(
        "call_service",
        {"service_name": "echo", "method": "GET", "url": f"https://127.0.0.1:{upstream.port}/v1/models",
         "headers": {"Authorization": "Bearer agent-supplied", "Accept": "application/json"}},
    )  # fmt: skip
    assert not result.is_error, result.content
    out = result.structured_content
    assert out["status"] == 200
    assert out["body"]["headers"]["Authorization"] == "[REDACTED:echo]"
    assert out["redactions"] == 1
    assert out["ignored_headers"] == ["Authorization"]
    assert [v for r in upstream.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
    assert SECRET not in json.dumps(result.model_dump())
    records = [json.loads(x) for x in (home / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["id"] == out["audit_id"] and records[-1]["source"] == "mcp"


async def test_host_not_bound_is_refused_before_any_traffic(
    client: Client, local_service: Service, upstream: EchoUpstream, home: Path
) -> None:
    result = await client.call_tool(
        "call_service", {"service_name": "echo", "method": "GET", "url": "https://api.openai.com/v1/models"}
    )
    assert result.is_error
    text = result.content[0].text
    assert "not a host of service 'echo'" in text and f"127.0.0.1:{upstream.port}" in text
    assert upstream.received == []
    assert not (home / "audit.jsonl").exists()


async def test_unknown_service_lists_the_known_ones(client: Client, local_service: Service) -> None:
    result = await client.call_tool("call_service", {"service_name": "nope", "method": "GET", "url": "https://x.test/"})
    assert result.is_error and "known services: echo" in result.content[0].text


async def test_get_credentials_is_masked_by_default(client: Client, local_service: Service) -> None:
    result = await client.call_tool("get_credentials", {"service_name": "echo"})
    out = result.structured_content
    assert out["reveal_policy"] == "masked" and out["value"] is None
    assert out["masked"].endswith(SECRET[-4:])
    assert SECRET not in json.dumps(result.model_dump())


async def test_get_credentials_never_policy_points_to_call_service(client: Client, vault: Vault) -> None:
    vault.add_service(make_service("hidden", "api.hidden.test", reveal="never"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "hidden"})
    assert result.is_error and "call_service" in result.content[0].text


async def test_get_credentials_full_reveal_is_audited(client: Client, vault: Vault, home: Path) -> None:
    vault.add_service(make_service("open", "api.open.test", reveal="full"), validate_secret(SECRET))
    result = await client.call_tool("get_credentials", {"service_name": "open"})
    assert result.structured_content["value"] == SECRET
    record = json.loads((home / "audit.jsonl").read_text().splitlines()[-1])
    assert record["action"] == "reveal" and record["service"] == "open"
    assert SECRET not in (home / "audit.jsonl").read_text()


async def test_check_credential_status_reports_expiry(client: Client, vault: Vault) -> None:
    vault.add_service(make_service("old", "api.old.test", expires_at=1.0), validate_secret(SECRET))
    result = await client.call_tool("check_credential_status", {"service_name": "old"})
    assert result.structured_content["state"] == "expired"
    assert "rotate" in result.structured_content["detail"]


async def test_wrong_argument_types_are_tool_errors_and_the_server_stays_up(
    client: Client, local_service: Service
) -> None:
    bad = await client.call_tool("call_service", {"service_name": "echo", "method": "FETCH", "url": 5})
    assert bad.is_error
    assert not (await client.call_tool("list_services", {})).is_error
