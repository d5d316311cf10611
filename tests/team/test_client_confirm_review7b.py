"""The team client's question before a write, second round (review 7b): a GET that names a write by
an override is asked about (the team server has no question of its own, so this one is the only
gate), and the local call bounds hold before anything is asked, so the question stays bounded.
Real team server (OpenBao, PostgreSQL, uvicorn), real MCP client session."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from clavis_mcp.mcp_front.team_client import TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from demo.echo_upstream import EchoUpstream
from tests.team.conftest import TeamServer, new_key
from tests.team.test_client_confirm import add_confirmed, calls_to
from tests.team.test_mcp_client_e2e import answering, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
QUESTION_BOUND = 8 * 1024  # characters, as confirm.QUESTION_BOUND promises


async def call(server: TeamServer, key: str, callback: Any, arguments: dict[str, Any]) -> Any:
    async with Client(build_team_server(TeamClient(server.url, {"CLAVIS_API_KEY": key})),
                      elicitation_callback=callback) as client:  # fmt: skip
        return await client.call_tool("call_service", {"service_name": "guarded", **arguments})


async def test_a_get_with_a_method_override_is_asked_about_and_declined_is_not_sent(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_confirmed(server, upstream, "guarded")
    key = new_key(server, "writer", ["guarded"])
    callback, asked = answering("decline")
    result = await call(server, key, callback, {
        "method": "GET", "url": f"https://127.0.0.1:{upstream.port}/w/items",
        "headers": {"X-HTTP-Method-Override": "DELETE"}, "params": {"force": "true"},
    })  # fmt: skip
    assert result.is_error and "declined" in text_of(result), text_of(result)
    [question] = asked
    assert question.startswith("An AI assistant wants to send a `DELETE` request to `127.0.0.1:")
    assert "\nMethod: `GET (X-HTTP-Method-Override: DELETE)`\n" in question
    assert calls_to(upstream, "/w") == 0  # the team server was never asked to send it


async def test_headers_over_the_call_bounds_are_refused_before_anything_is_asked(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_confirmed(server, upstream, "guarded")
    key = new_key(server, "writer", ["guarded"])
    callback, asked = answering("accept")
    result = await call(server, key, callback, {
        "method": "POST", "url": f"https://127.0.0.1:{upstream.port}/w", "json": {"note": "hello"},
        "headers": {f"X-H{i}": "\U000f0000" * 8192 for i in range(8)},
    })  # fmt: skip
    assert result.is_error and "the headers take" in text_of(result), text_of(result)
    assert asked == [] and calls_to(upstream, "/w") == 0


async def test_a_large_team_write_gives_a_bounded_question_with_its_summary_first(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_confirmed(server, upstream, "guarded")
    key = new_key(server, "writer", ["guarded"])
    callback, asked = answering("decline")
    result = await call(server, key, callback, {
        "method": "PUT", "url": f"https://127.0.0.1:{upstream.port}/w", "data": "\u3164" * 5000,
        "headers": {f"X-H{i}": "`" * 200 for i in range(60)}, "params": {"q": "\u00e9" * 6000},
    })  # fmt: skip
    assert result.is_error and "declined" in text_of(result), text_of(result)
    [question] = asked
    assert len(question) <= QUESTION_BOUND and question.endswith("\n\nAllow it?")
    assert question.startswith("An AI assistant wants to send a `PUT` request to `127.0.0.1:")
    assert ", 60 headers, body of 15000 bytes)" in question.split("\n")[0]
    assert "\n- and 44 more headers, not shown\n" in question
