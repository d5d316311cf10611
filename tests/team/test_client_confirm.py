"""Write confirmation in team mode: a service the admin marked ``confirm_writes`` makes the team
client ask its user before a non-safe method, through a real MCP client session's elicitation;
a refusal never reaches the team server. Real team server (OpenBao, PostgreSQL, uvicorn)."""

from __future__ import annotations

import pytest
from mcp import Client

from clavis_mcp.mcp_front.team_client import TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.team.conftest import TeamServer, add_echo, echo_definition, new_key
from tests.team.test_mcp_client_e2e import answering, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def add_confirmed(server: TeamServer, upstream: EchoUpstream, name: str) -> None:
    definition = {**echo_definition(name, upstream), "confirm_writes": True}
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": SECRET})
        assert answer.status_code == 201, answer.text


def calls_to(upstream: EchoUpstream, path: str) -> int:
    return sum(1 for r in upstream.received if r.path.startswith(path))


@pytest.mark.parametrize("action", ["decline", "accept"])
async def test_a_write_to_a_confirm_writes_service_asks_the_local_user_first(
    server: TeamServer, upstream: EchoUpstream, action: str
) -> None:
    add_confirmed(server, upstream, "guarded")
    key = new_key(server, "writer", ["guarded"])
    callback, asked = answering(action)
    url = f"https://127.0.0.1:{upstream.port}"
    async with Client(build_team_server(TeamClient(server.url, {"CLAVIS_API_KEY": key})),
                      elicitation_callback=callback) as client:  # fmt: skip
        listed = await client.call_tool("list_services", {})
        read = await client.call_tool("call_service", {"service_name": "guarded", "method": "GET", "url": f"{url}/r"})
        write = await client.call_tool(
            "call_service",
            {"service_name": "guarded", "method": "POST", "url": f"{url}/w", "json": {"order": 42}},
        )
    assert listed.structured_content["services"][0]["confirm_writes"] is True
    assert not read.is_error, text_of(read)
    assert len(asked) == 1, asked  # the GET was not asked about; the POST was
    assert "POST" in asked[0] and "'guarded'" in asked[0] and '"order":42' in asked[0] and SECRET not in asked[0]
    if action == "decline":
        assert write.is_error and "declined" in text_of(write) and "not sent" in text_of(write)
        assert calls_to(upstream, "/w") == 0  # the team server was never asked to send it
    else:
        assert not write.is_error, text_of(write)
        assert calls_to(upstream, "/w") == 1


async def test_a_service_without_confirm_writes_is_not_asked_about(server: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(server, upstream, name="plain")
    key = new_key(server, "writer", ["plain"])
    callback, asked = answering("decline")
    url = f"https://127.0.0.1:{upstream.port}/w"
    async with Client(build_team_server(TeamClient(server.url, {"CLAVIS_API_KEY": key})),
                      elicitation_callback=callback) as client:  # fmt: skip
        write = await client.call_tool("call_service", {"service_name": "plain", "method": "POST", "url": url})
        listed = await client.call_tool("list_services", {})
    assert not write.is_error and asked == [], text_of(write)
    assert listed.structured_content["services"][0]["confirm_writes"] is False


async def test_confirm_writes_must_be_a_boolean(server: TeamServer, upstream: EchoUpstream) -> None:
    definition = {**echo_definition("odd", upstream), "confirm_writes": "yes"}
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": SECRET})
    assert answer.status_code == 400 and "confirm_writes" in answer.json()["detail"]
