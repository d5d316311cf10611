"""Request ids over stdio, with `clavis-mcp` as a real subprocess: every request is answered
whatever its id, and the server knows which requests are really in flight, so the end of input
stops it at once instead of after the grace period it gives calls still running."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import SECRET
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.test_stdio_e2e import RawServer, cli

pytestmark = pytest.mark.e2e
PROMPT = 5.0  # seconds: well above a normal stop (under 1 s), well below the 10 s grace for calls in flight


@pytest.fixture
def server(home: Path) -> Iterator[RawServer]:
    """A server over no vault: ping needs none, and it still stops the way every server does."""
    raw = RawServer()
    try:
        yield raw.initialized()
    finally:
        raw.close()


def seconds_to_exit_after_end_of_input(server: RawServer) -> float:
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    started = time.monotonic()
    server.proc.wait(timeout=30)
    return time.monotonic() - started


IDS: list[tuple[str, bytes, str | int]] = [
    ("string-of-300-characters", b'"' + b"A" * 300 + b'"', "A" * 300),
    ("integer-of-20-digits", b"12345678901234567890", 12345678901234567890),
    ("negative-integer-of-30-digits", b"-" + b"9" * 30, -int("9" * 30)),
    ("string-with-escapes", b'"\\u0041\\"\\\\b"', 'A"\\b'),
]


@pytest.mark.parametrize(("written", "parsed"), [r[1:] for r in IDS], ids=[r[0] for r in IDS])
def test_a_request_is_answered_whatever_its_id_and_the_end_of_input_then_stops_the_server_promptly(
    server: RawServer, written: bytes, parsed: str | int
) -> None:
    """A behaviour check of the stop, not a speed test: the server used to match replies to requests
    with a pattern that missed such ids, so the answered request stayed "in flight" and every stop
    waited out the whole 10 s grace. The bound only has to tell that wait from none."""
    server.send(b'{"jsonrpc": "2.0", "id": ' + written + b', "method": "ping"}')
    answer = server.reply()
    assert (answer["id"], answer["result"]) == (parsed, {})
    assert seconds_to_exit_after_end_of_input(server) < PROMPT
    assert server.proc.returncode == 0


BAD_IDS = [("float", b"3.5"), ("whole-float", b"3.0"), ("true", b"true"), ("null", b"null"), ("object", b'{"a": 1}'),
           ("array", b"[1]")]  # fmt: skip


@pytest.mark.parametrize("written", [r[1] for r in BAD_IDS], ids=[r[0] for r in BAD_IDS])
def test_a_request_whose_id_is_not_a_string_or_an_integer_gets_an_invalid_request_error_and_the_server_stays_up(
    server: RawServer, written: bytes
) -> None:
    """The SDK reads such a request as a notification (its id dropped) and answers nothing."""
    server.send(b'{"jsonrpc": "2.0", "id": ' + written + b', "method": "tools/list"}')
    answer = server.reply()
    assert (answer["id"], answer["error"]["code"]) == (None, -32600), answer
    assert "string or an integer" in answer["error"]["message"]
    server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert len(server.reply()["result"]["tools"]) == 4
    assert seconds_to_exit_after_end_of_input(server) < PROMPT


def test_a_bad_id_on_a_line_the_sdk_cannot_read_is_answered_too(server: RawServer) -> None:
    """A lone surrogate sends the line down the screen's slow path, which must judge the id as well."""
    server.send(b'{"jsonrpc": "2.0", "id": 3.5, "method": "tools/call", '
                b'"params": {"name": "list_services", "arguments": {"cursor": "\\ud800"}}}')  # fmt: skip
    answer = server.reply()
    assert (answer["id"], answer["error"]["code"]) == (None, -32600), answer


def test_a_call_the_client_cancelled_is_not_waited_for_when_the_input_ends(home: Path, upstream_ca: trustme.CA) -> None:
    """A cancelled request is never answered (MCP: no reply after a cancel), so it must leave the
    in-flight set when the server settles it, or the stop would wait out the 10 s grace for it.
    A behaviour check of the stop, not a speed test."""
    assert cli("init").returncode == 0
    slow = ScriptedUpstream.start(upstream_ca)  # /slow answers after two seconds
    server = RawServer()
    try:
        added = cli("add", "api", "--host", f"127.0.0.1:{slow.port}", "--local", "--secret-stdin", stdin=SECRET)
        assert added.returncode == 0, added.stderr
        server.initialized()
        arguments = {"service_name": "api", "method": "GET", "url": slow.url("/slow")}
        server.send({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
                     "params": {"name": "call_service", "arguments": arguments}})  # fmt: skip
        deadline = time.monotonic() + 30
        while not slow.received and time.monotonic() < deadline:  # the call is running
            time.sleep(0.02)
        assert slow.received
        server.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "call-1"}})
        server.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert server.reply()["id"] == 2  # the cancelled call got no reply, the ping did
        assert seconds_to_exit_after_end_of_input(server) < PROMPT
        assert server.proc.returncode == 0
    finally:
        server.close()
        slow.stop()


def test_sigterm_waits_for_nothing_once_every_request_is_answered(server: RawServer) -> None:
    """A behaviour check of the stop, not a speed test: SIGTERM gives only calls in flight the grace."""
    server.send(b'{"jsonrpc": "2.0", "id": ' + b"7" * 25 + b', "method": "ping"}')
    assert server.reply()["id"] == int("7" * 25)
    started = time.monotonic()
    code, stderr = server.stop(signal.SIGTERM)
    assert time.monotonic() - started < PROMPT
    assert code == 0 and "Traceback" not in stderr, stderr
