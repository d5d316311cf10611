"""ClavisServer: tools added when first listed or called, so ``initialize`` does not wait for them."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.types import CallToolResult

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.arguments import ClavisServer
from clavis_mcp.mcp_front.unavailable import build_unavailable_server
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.errors import VaultLocked

pytestmark = pytest.mark.anyio

TOOL_NAMES = ["list_services", "get_credentials", "check_credential_status", "call_service"]


def test_tools_are_added_once_and_only_when_first_needed() -> None:
    added: list[ClavisServer[None]] = []
    server: ClavisServer[None] = ClavisServer(name="t", add_tools=added.append)
    assert added == []
    server._tool_input_schema("call_service")  # the SDK's lookup before an HTTP call (Mcp-Param headers)
    server._tool_input_schema("call_service")
    assert added == [server]


async def test_a_call_before_any_listing_finds_its_tool(vault: Vault, audit: AuditLog, home: Path) -> None:
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    try:
        result = await build_server(gateway).call_tool("list_services", {})
    finally:
        await gateway.aclose()
    assert isinstance(result, CallToolResult) and not result.is_error
    assert result.structured_content == {"services": [], "total": 0, "next_cursor": None}


async def test_the_input_schema_is_found_before_any_listing(vault: Vault, audit: AuditLog, home: Path) -> None:
    schema = build_server(Gateway(vault, audit, LocalCA(home / "certs")))._tool_input_schema("call_service")
    assert schema is not None and "url" in schema["properties"]


async def test_the_unavailable_server_answers_a_call_before_any_listing() -> None:
    server = build_unavailable_server(VaultLocked("the vault is locked; unlock it"))
    result = await server.call_tool("check_credential_status", {"service_name": "api"})
    assert isinstance(result, CallToolResult) and result.structured_content is not None
    assert result.structured_content["state"] == "locked"
    assert [tool.name for tool in await server.list_tools()] == TOOL_NAMES
