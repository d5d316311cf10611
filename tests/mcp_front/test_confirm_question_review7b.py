"""The question before a write, second round (review 7b): the method is judged as the proxy judges
it (a GET that says DELETE is asked about and shown so), nothing but printable ASCII reaches the
person unescaped, the path is shown as the proxy sends it (and as a server reads it), and the
question is bounded with its summary first. Real MCP client sessions (both protocol paths), the
real embedded proxy, a loopback HTTPS upstream that records what it received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clavis_mcp.mcp_front.confirm import quoted
from clavis_mcp.mcp_front.settings import ServiceSettings, save_settings
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.approvals import printable
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.mcp_front.test_server import answering, call, connect, gateway, mode, text_of

__all__ = ["connect", "gateway", "mode"]  # fixtures, shared with test_server
pytestmark = pytest.mark.anyio
QUESTION_BOUND = 8 * 1024  # characters, as confirm.QUESTION_BOUND promises


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ({"headers": {"X-HTTP-Method-Override": "DELETE"}}, "GET (X-HTTP-Method-Override: DELETE)"),
        ({"params": {"_method": "DELETE"}}, "GET (the query parameter _method: DELETE)"),
        ({"url_query": "?%5Fmethod=delete"}, "GET (the query parameter _method: DELETE)"),
        ({"method": "HEAD", "headers": {"x-method-override": "PUT, DELETE"}}, "HEAD (x-method-override: PUT, "),
    ],
    ids=["override-header", "query-param", "encoded-query-name", "head-with-a-list"],
)
async def test_a_safe_method_that_names_a_write_is_asked_about_and_declined_is_not_sent(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream, args: dict[str, Any], shown: str
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("decline")
    given = {k: v for k, v in args.items() if k != "url_query"}
    async with connect(callback) as client:
        result = await call(client, "/items" + args.get("url_query", ""), scripted, **given)
    assert result.is_error and "declined" in text_of(result), text_of(result)
    [question] = asked
    assert question.startswith("An AI assistant wants to send a `DELETE` request to `127.0.0.1:")
    assert f"Method: `{shown}" in question
    assert scripted.received == []  # nothing went out


async def test_a_plain_get_is_still_not_asked_about(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("decline")
    async with connect(callback) as client:
        result = await call(client, "/items?q=a%20b", scripted, headers={"X-Note": "methodical"})
    assert not result.is_error, text_of(result)
    assert asked == [] and len(scripted.received) == 1


def smuggled(text: str) -> str:
    """Each byte as a variation selector: displays as nothing after the letter before it."""
    return "".join(chr(0xFE00 + b) if b < 16 else chr(0xE0100 + b - 16) for b in text.encode())


async def test_a_body_smuggling_text_in_variation_selectors_and_blank_letters_is_shown_escaped(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    hidden = smuggled("acct 4111")
    fillers = "\u3164\u115f\u1160\uffa0\u2800\u034f\u180b\u17b4\uff40\u02cb\u1fef"
    async with connect(callback) as client:
        result = await call(client, "/comments", scripted, method="POST", json={"body": "LGTM" + hidden + fillers})
    assert not result.is_error, text_of(result)
    [question] = asked
    assert question.isascii()  # nothing in it a person cannot see
    assert '`{"body":"LGTM\\U000e0151\\U000e0153' in question  # the hidden bytes become visible
    assert "\\u3164\\u115f\\u1160\\uffa0\\u2800\\u034f\\u180b\\u17b4\\uff40\\u02cb\\u1fef" in question


@pytest.mark.parametrize(
    ("path", "sent", "read_as"),
    [
        ("/v1/projects/sandbox/%2e%2e/production", "/v1/projects/production", None),
        ("/v1/projects/sandbox/%2E%2e/%2e%2E/projects/./production", "/v1/projects/production", None),
        ("/v1/projects/%70%72%6f%64%75%63%74%69%6f%6e", "/v1/projects/%70%72%6f%64%75%63%74%69%6f%6e",
         "/v1/projects/production"),
    ],
    ids=["dot-dot", "mixed-case-dots", "encoded-letters"],
)  # fmt: skip
async def test_the_path_is_shown_as_the_proxy_sends_it_and_as_a_server_reads_it(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream, path: str, sent: str, read_as: str | None
) -> None:
    service = make_service("pp", f"127.0.0.1:{scripted.port}", local=True, path_prefixes=("/v1/projects",))
    vault.add_service(service, validate_secret(SECRET))
    save_settings(vault, "pp", ServiceSettings(confirm_writes=True))
    callback, asked = answering("accept")
    async with connect(callback) as client:
        result = await client.call_tool(
            "call_service", {"service_name": "pp", "method": "DELETE", "url": scripted.url(path)}
        )
    assert not result.is_error, text_of(result)
    [question] = asked
    [seen] = scripted.received
    assert seen.path == sent
    assert f"\nRequest: `DELETE {scripted.url(seen.path)}`\n" in question  # what the upstream received
    if read_as is None:
        assert "Which reads as" not in question
    else:
        assert f"\nWhich reads as: `DELETE {scripted.url(read_as)}`\n" in question


async def test_a_huge_request_gives_a_bounded_question_with_its_summary_first(
    connect: Callable[..., Any], vault: Vault, scripted: ScriptedUpstream
) -> None:
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    callback, asked = answering("decline")
    headers = {f"X-H{i}": "`" * 230 for i in range(64)}  # 16 KiB of headers that escape six times longer
    params = {f"p{i}": "\u00e9" * 3000 for i in range(2)}  # a query that escapes long
    async with connect(callback) as client:
        result = await call(client, "/w", scripted, method="POST", headers=headers, params=params, data="\u2800" * 700)
    assert result.is_error, text_of(result)
    [question] = asked
    assert len(question) <= QUESTION_BOUND and question.endswith("\n\nAllow it?")
    first = question.split("\n")[0]
    assert first.startswith("An AI assistant wants to send a `POST` request to `127.0.0.1:")
    assert ", 64 headers, body of 2100 bytes)" in first and "URL of " in first
    assert "\n- and 48 more headers, not shown\n" in question
    assert "Body, 2100 bytes: its first 100 of 700 characters (the rest not shown): `" in question
    assert max(len(line) for line in question.split("\n")) < 1200


def test_the_question_and_the_approval_queue_escape_alike() -> None:
    text = "LGTM\ufe0f\U000e0101 \u3164\u0351\uff40 caf\u00e9 \x1b\u202e"
    assert quoted(text) == f"`{printable(text)}`" and quoted(text).isascii()


def test_the_question_stays_within_its_bound_when_every_part_is_at_its_worst() -> None:
    from clavis_mcp.mcp_front.confirm import QUESTION_BOUND, header_lines, write_question

    wide = "\U000e0101" * 50_000  # ten characters escaped, each
    headers = header_lines({f"X-{i}": wide for i in range(64)}, lambda _: True)
    url = "https://" + "h" * 300 + "/" + "%70" * 10_000 + wide
    credential = f"the credential of the team service {'s' * 64!r}"
    question = write_question(credential, f"GET (X-Method-Override: {wide})", wide, url, headers, wide, 10**9)
    assert len(question) <= QUESTION_BOUND and question.endswith("\n\nAllow it?")
