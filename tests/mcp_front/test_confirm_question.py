"""The question before a write shows the request as it is sent, and nothing the assistant chose can
pass for clavis-mcp's own text: the URL as on the wire (query merged, percent-encoded), every header
sent, the body's size before an escaped, delimited body. Real MCP client sessions (both protocol
paths), the real embedded proxy, a loopback HTTPS upstream that records what it received.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from clavis_mcp.mcp_front.confirm import quoted
from clavis_mcp.mcp_front.settings import ServiceSettings, save_settings
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.mcp_front.test_server import answering, call, connect, gateway, mode, text_of

__all__ = ["connect", "gateway", "mode"]  # fixtures, shared with test_server
pytestmark = pytest.mark.anyio

INTRO = (
    "An AI assistant wants to send a `…` request to `…` with the credential of {name} ({sizes}). What the "
    "assistant chose is between backquotes, with line breaks, backquotes and every character other than "
    "printable ASCII written as \\ escapes."
)
_QUOTED = re.compile(r"`[^`\n]*`")


def outline(question: str) -> list[str]:
    """The question's lines with every quoted part replaced by `…`: what clavis-mcp itself wrote.
    Only ``\\n`` breaks its lines (no U+2028, U+0085, CR, form feed, ...)."""
    assert question.splitlines() == question.split("\n"), question
    return [_QUOTED.sub("`…`", line) for line in question.split("\n")]


async def test_line_separators_and_a_fake_no_body_in_a_write_are_escaped_and_the_size_comes_first(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    path = "/echo/prod\u2028\u2028(clavis-mcp:\u00a0read-only\u00a0lookup,\u00a0no\u00a0body)\u2028/delete-everything"
    data = "\n\n(no body)\n\nclavis-mcp has verified this request is read-only.\n\n" + " " * 600 + "REAL PAYLOAD"
    async with connect(callback) as client:
        result = await call(client, path, scripted, method="DELETE", data=data)
    assert not result.is_error, text_of(result)
    [question] = asked
    sent = scripted.received[0].path
    sizes = f"URL of {len(scripted.url(sent))} characters, 0 headers, body of {len(data)} bytes"
    assert outline(question) == [
        INTRO.format(name="'api'", sizes=sizes),
        "",
        "Request: `…`",
        "Headers:",
        "- none",
        f"Body, {len(data)} bytes: its first 594 of {len(data)} characters (the rest not shown): `…`",
        "",
        "Allow it?",
    ]
    assert "%E2%80%A8" in sent and "%C2%A0" in sent
    assert f"Request: `DELETE {scripted.url(sent)}`" in question  # as the upstream received it
    assert "(the rest not shown): `\\n\\n(no body)\\n\\nclavis-mcp has verified" in question
    assert not {"\u2028", "\u00a0"} & set(question)


async def test_a_method_override_header_and_the_query_are_shown_as_sent(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await call(
            client, "/echo", scripted, method="POST", json={"note": "hello"}, params={"force": "true", "q": "a b/é"},
            headers={"X-HTTP-Method-Override": "DELETE", "Authorization": "Bearer mine"},
        )  # fmt: skip
    assert not result.is_error, text_of(result)
    [question] = asked
    [seen] = scripted.received
    assert seen.path == "/echo?force=true&q=a+b%2F%C3%A9"
    assert ("X-HTTP-Method-Override", "DELETE") in seen.headers
    assert outline(question)[2:8] == [
        "Method: `…`",
        "Request: `…`",
        "Headers:",
        "- `…`",
        "- `…`",
        "Body, 16 bytes: `…`",
    ]
    assert question.startswith("An AI assistant wants to send a `DELETE` request to `127.0.0.1:")
    assert "Method: `POST (X-HTTP-Method-Override: DELETE)`" in question
    assert f"Request: `POST {scripted.url(seen.path)}`" in question
    assert "- `X-HTTP-Method-Override: DELETE`\n- `Content-Type: application/json`\n" in question
    assert 'Body, 16 bytes: `{"note":"hello"}`' in question
    assert "Authorization" not in question and SECRET not in question  # never sent: not listed


async def test_the_models_copy_of_the_credential_header_is_listed_as_replaced(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    service = make_service("keyed", f"127.0.0.1:{scripted.port}", header="X-Api-Key: {secret}", local=True)
    vault.add_service(service, validate_secret(SECRET))
    save_settings(vault, "keyed", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await client.call_tool(
            "call_service",
            {"service_name": "keyed", "method": "PUT", "url": scripted.url("/echo"), "headers": {"x_api-KEY": "mine"}},
        )
    assert not result.is_error, text_of(result)
    assert "- `x_api-KEY: mine` (clavis-mcp replaces it)\nBody: none\n" in asked[0] and SECRET not in asked[0]
    assert ("X-Api-Key", SECRET) in scripted.received[0].headers


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, é 中 \U0001f600", "`plain text, \\xe9 \\u4e2d \\U0001f600`"),
        ("a\nb\rc\td", "`a\\nb\\rc\\td`"),
        ("line\u2028para\u2029next\x85", "`line\\u2028para\\u2029next\\x85`"),
        ("\u202eevil\u202c \u2066x\u2069", "`\\u202eevil\\u202c \\u2066x\\u2069`"),
        ("zero\u200bwidth\u200d\ufeff\u00ad", "`zero\\u200bwidth\\u200d\\ufeff\\xad`"),
        ("nbsp\u00a0ideo\u3000thin\u2009", "`nbsp\\xa0ideo\\u3000thin\\u2009`"),
        ("\x1b[2J\x00\x7f", "`\\x1b[2J\\x00\\x7f`"),
        ("tag\U000e0041 private\ue000 lone\ud800", "`tag\\U000e0041 private\\ue000 lone\\ud800`"),
        ("close` quote \\` too", "`close\\u0060 quote \\\\\\u0060 too`"),
    ],
    ids=["visible", "controls", "separators", "bidi", "zero-width", "spaces", "terminal", "tags-private-surrogate",
         "backquote-backslash"],
)  # fmt: skip
def test_quoted_text_shows_every_hidden_or_line_breaking_character_as_an_escape(text: str, shown: str) -> None:
    assert quoted(text) == shown
