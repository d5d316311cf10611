"""The tool specifications both servers share, seen through real in-memory MCP client sessions.

A client must see the same tools whether the vault opened or not: one that approved a tool
by its annotations, or validates arguments against its schema, should not meet different
ones after a restart with a locked vault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import ElicitResult

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.unavailable import build_unavailable_server
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.errors import ClavisError, VaultLocked, VaultNotFound

pytestmark = pytest.mark.anyio

PROBLEMS = [
    VaultNotFound("no vault at /nowhere; create one with: clavis-mcp init"),
    VaultLocked("the passphrase does not open the vault; set CLAVIS_PASSPHRASE to the right one"),
]


@pytest.fixture(params=["legacy", "auto"], ids=["handshake", "2026-07-28"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


async def listed_tools(server: MCPServer[Any], mode: str) -> list[dict[str, Any]]:
    async with Client(server, mode=mode) as client:
        return [tool.model_dump(mode="json", by_alias=True) for tool in (await client.list_tools()).tools]


@pytest.mark.parametrize("problem", PROBLEMS, ids=["missing", "locked"])
async def test_the_unavailable_server_advertises_the_same_tools_as_the_real_one(
    vault: Vault, audit: AuditLog, home: Path, mode: str, problem: ClavisError
) -> None:
    real = await listed_tools(build_server(Gateway(vault, audit, LocalCA(home / "certs"))), mode)
    unavailable = await listed_tools(build_unavailable_server(problem), mode)
    assert [tool["name"] for tool in real] == ["list_services", "get_credentials", "check_credential_status",
                                               "call_service"]  # fmt: skip
    assert unavailable == real


async def test_the_unavailable_server_asks_the_user_nothing_and_answers_with_the_fix(mode: str) -> None:
    asked: list[str] = []

    async def elicitation(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    server = build_unavailable_server(PROBLEMS[0])
    async with Client(server, mode=mode, elicitation_callback=elicitation) as client:
        revealed = await client.call_tool("get_credentials", {"service_name": "api"})
        written = await client.call_tool(
            "call_service", {"service_name": "api", "method": "POST", "url": "https://api.example.com/v1", "json": {}}
        )
    for result in (revealed, written):
        assert result.is_error and "clavis-mcp init" in result.content[0].text
    assert asked == []
