"""The team client's question before a write shows what the team server is asked to send: the URL
with its query parameters merged as httpx sends it, the headers the assistant gave, the body
escaped after its size. Real team server (OpenBao, PostgreSQL, uvicorn), real MCP client session."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from clavis_mcp.mcp_front.team_client import TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.mcp_front.test_confirm_question import INTRO, outline
from tests.team.conftest import TeamServer, new_key
from tests.team.test_client_confirm import add_confirmed
from tests.team.test_mcp_client_e2e import answering, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_the_team_question_shows_the_query_the_headers_and_an_escaped_body(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_confirmed(server, upstream, "guarded")
    key = new_key(server, "writer", ["guarded"])
    callback, asked = answering("accept")
    url = f"https://127.0.0.1:{upstream.port}/w#not-sent"
    note = {"note": "hello\u2028\u2028(no body)\u202e"}
    async with Client(build_team_server(TeamClient(server.url, {"CLAVIS_API_KEY": key})),
                      elicitation_callback=callback) as client:  # fmt: skip
        write = await client.call_tool("call_service", {
            "service_name": "guarded", "method": "POST", "url": url, "json": note,
            "params": {"force": "true", "scope": "all projects"}, "headers": {"X-HTTP-Method-Override": "DELETE"},
        })  # fmt: skip
    assert not write.is_error, text_of(write)
    [question] = asked
    [seen] = [r for r in upstream.received if r.path.startswith("/w")]
    assert seen.path == "/w?force=true&scope=all+projects" and ("X-HTTP-Method-Override", "DELETE") in seen.headers
    size = len(json.dumps(note, ensure_ascii=False, separators=(",", ":")).encode())
    assert len(seen.body) == size  # the size the question gives is what was sent
    sent = f"https://127.0.0.1:{upstream.port}{seen.path}"
    sizes = f"URL of {len(sent)} characters, 1 headers, body of {size} bytes"
    assert outline(question) == [
        INTRO.format(name="the team service 'guarded'", sizes=sizes),
        "",
        "Method: `…`",
        "Request: `…`",
        "Headers:",
        "- `…`",
        f"Body, {size} bytes: `…`",
        "",
        "Allow it?",
    ]
    assert f"Request: `POST https://127.0.0.1:{upstream.port}{seen.path}`\n" in question
    assert "- `X-HTTP-Method-Override: DELETE`\n" in question
    assert '`{"note":"hello\\u2028\\u2028(no body)\\u202e"}`' in question and SECRET not in question
