"""The server's streams over stdio: stdin (``stdio._Lines``), each screened line reaching the server
as a message validated once, by the task that asks for it, a line the SDK would drop answered on
the wire instead, the end of input ending the stream; and stdout (``stdio._Replies``), each reply
written whole, in order, by a writer task of its own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import anyio
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage

from clavis_mcp.mcp_front import jsonrpc_screen
from clavis_mcp.mcp_front.stdio import _Lines, _replies, _Wire

pytestmark = pytest.mark.anyio
CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_services", "arguments": {}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the stream reads a pipe on asyncio's loop


@pytest.fixture
def pipes() -> Iterator[tuple[int, int, int, int]]:
    """(stdin read end, its write end, stdout read end, its write end), non-blocking where served."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    for fd in (stdin_r, stdout_w):
        os.set_blocking(fd, False)
    yield stdin_r, stdin_w, stdout_r, stdout_w
    for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
        try:
            os.close(fd)
        except OSError:
            pass


async def test_each_line_reaches_the_server_as_a_message_validated_once(
    pipes: tuple[int, int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin_r, stdin_w, stdout_r, stdout_w = pipes
    validated: list[str] = []
    adapter = types.jsonrpc_message_adapter

    class Counting:
        def validate_json(self, data: str, **kwargs: object) -> types.JSONRPCMessage:
            validated.append(data)
            return adapter.validate_json(data, **kwargs)  # type: ignore[arg-type]

        def validate_python(self, data: object, **kwargs: object) -> types.JSONRPCMessage:
            return adapter.validate_python(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jsonrpc_screen.types, "jsonrpc_message_adapter", Counting())
    wire = _Wire(stdout_w, on_loop=True)
    lines = _Lines(stdin_r, wire, on_loop=True)
    os.write(stdin_w, (json.dumps(CALL) + "\n" + "not json\n").encode())
    os.close(stdin_w)
    with anyio.fail_after(5):
        first = await lines.receive()
        assert first.message == types.JSONRPCRequest(**CALL)  # type: ignore[arg-type]
        assert wire.in_flight == {7}  # handed to the server, not yet answered
        await wire.write('{"jsonrpc":"2.0","id":7,"result":{}}\n', answers=7)  # as the server answers it
        assert [message async for message in lines] == []  # the broken line is answered here
        with pytest.raises(anyio.EndOfStream):
            await lines.receive()
    assert len(validated) == 2  # the call once, and the broken line
    replies = [json.loads(line) for line in os.read(stdout_r, 4096).splitlines()]
    assert replies[1]["id"] is None and replies[1]["error"]["code"] == jsonrpc_screen.PARSE_ERROR


async def test_replies_are_written_whole_in_order_and_end_when_the_server_closes_them(
    pipes: tuple[int, int, int, int],
) -> None:
    _, _, stdout_r, stdout_w = pipes
    wire = _Wire(stdout_w, on_loop=True)
    results = [types.JSONRPCResponse(jsonrpc="2.0", id=n, result={"n": n}) for n in range(3)]
    with anyio.fail_after(5):
        async with _replies(wire) as replies:
            for result in results:
                await replies.send(SessionMessage(result))
            await replies.aclose()  # as the server does when it stops
            with pytest.raises(anyio.ClosedResourceError):
                await replies.send(SessionMessage(results[0]))
    written = os.read(stdout_r, 4096).decode().splitlines()
    assert [json.loads(line) for line in written] == [{"jsonrpc": "2.0", "id": n, "result": {"n": n}} for n in range(3)]


async def test_a_signal_stops_the_reading_and_the_whole_lines_already_read_are_still_served(
    pipes: tuple[int, int, int, int],
) -> None:
    stdin_r, stdin_w, _, stdout_w = pipes
    lines = _Lines(stdin_r, _Wire(stdout_w, on_loop=True), on_loop=True)
    notification = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"})
    os.write(stdin_w, f'{notification}\n{notification}\n{{"jsonrpc":'.encode())
    with anyio.fail_after(5):
        await lines.receive()  # one read takes in both lines and the start of a third
        lines.close()
        assert isinstance((await lines.receive()).message, types.JSONRPCNotification)
        with pytest.raises(anyio.EndOfStream):
            await lines.receive()


async def test_a_signal_while_the_stream_waits_for_input_ends_it(pipes: tuple[int, int, int, int]) -> None:
    stdin_r, _, _, stdout_w = pipes
    lines = _Lines(stdin_r, _Wire(stdout_w, on_loop=True), on_loop=True)

    async def signalled() -> None:
        await anyio.sleep(0.05)
        lines.close()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(signalled)
            with pytest.raises(anyio.EndOfStream):
                await lines.receive()


async def test_a_request_of_the_server_to_the_client_does_not_settle_a_client_request_of_the_same_id(
    pipes: tuple[int, int, int, int],
) -> None:
    """Only a response or an error answers a request: the server's own requests (an elicitation)
    number their ids from 1 too, and one must not make a call still running look answered."""
    _, _, stdout_r, stdout_w = pipes
    wire = _Wire(stdout_w, on_loop=True)
    wire.sent_on(1)
    asked = types.JSONRPCRequest(jsonrpc="2.0", id=1, method="elicitation/create", params={})
    with anyio.fail_after(5):
        async with _replies(wire) as replies:
            await replies.send(SessionMessage(asked))
            await replies.aclose()
        assert wire.in_flight == {1} and not wire.idle.is_set()
        async with _replies(wire) as replies:
            await replies.send(SessionMessage(types.JSONRPCResponse(jsonrpc="2.0", id=1, result={})))
            await replies.aclose()
    assert wire.in_flight == set() and wire.idle.is_set()
    assert [json.loads(line)["id"] for line in os.read(stdout_r, 4096).splitlines()] == [1, 1]
