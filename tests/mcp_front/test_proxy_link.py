"""The gateway's keep-alive HTTP/1.1 connections to the proxy, against a real loopback server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import h11
import pytest

from clavis_mcp.mcp_front.proxy_link import ProxyLink

pytestmark = pytest.mark.anyio
BODY = b'{"ok": true}'


@dataclass
class Server:
    """Answers every request with BODY; ``close_after`` closes a connection after that many answers
    (without saying so); ``garbage`` answers with bytes that are not HTTP."""

    port: int = 0
    connections: int = 0
    ends: list[str] = field(default_factory=list)  # how each connection ended: "eof" or "reset"
    close_after: int | None = None
    garbage: bool = False
    large: bool = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn, answered = h11.Connection(h11.SERVER), 0
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data:
                        self.ends.append("eof")
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.EndOfMessage):
                    if self.garbage:
                        writer.write(b"SSH-2.0-not-http\r\n\r\n")
                        continue
                    body = BODY * (100_000 if self.large else 1)
                    head = h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))])
                    writer.write(conn.send(head) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    answered += 1
                    if answered == self.close_after:
                        writer.close()
                        return
                    conn.start_next_cycle()
        except ConnectionResetError:
            self.ends.append("reset")
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    listener = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    yield state
    listener.close()


async def get(link: ProxyLink, read: bool = True) -> tuple[int, bytes]:
    answer = await link.send("GET", "/x", [(b"Host", b"127.0.0.1")], None)
    body = b""
    try:
        if read:
            body = b"".join([chunk async for chunk in answer.chunks()])
    finally:
        await answer.aclose()
    return answer.status, body


async def test_sequential_requests_share_one_connection(server: Server) -> None:
    link = ProxyLink("127.0.0.1", server.port, connect_timeout=5)
    assert [await get(link) for _ in range(3)] == [(200, BODY)] * 3
    assert server.connections == 1
    await link.aclose()


async def test_a_connection_the_proxy_closed_while_idle_is_not_reused(server: Server) -> None:
    server.close_after = 1
    link = ProxyLink("127.0.0.1", server.port, connect_timeout=5)
    assert await get(link) == (200, BODY)
    await asyncio.sleep(0.05)  # the close arrives while the connection is idle
    assert await get(link) == (200, BODY)
    assert server.connections == 2
    await link.aclose()


async def test_an_answer_left_unread_resets_its_connection_and_the_next_request_opens_another(
    server: Server,
) -> None:
    server.large = True  # more than fits in one read: the body is still arriving when the reader stops
    link = ProxyLink("127.0.0.1", server.port, connect_timeout=5)
    assert (await get(link, read=False))[0] == 200
    assert await get(link) == (200, BODY * 100_000)
    with anyio.fail_after(5):
        while not server.ends:
            await asyncio.sleep(0.01)
    assert server.ends[0] == "reset" and server.connections == 2  # a reset, so the proxy knows it was given up
    await link.aclose()


async def test_an_answer_that_is_not_http_is_a_connection_error(server: Server) -> None:
    server.garbage = True
    link = ProxyLink("127.0.0.1", server.port, connect_timeout=5)
    with pytest.raises(ConnectionError, match="not valid HTTP/1.1"):
        await get(link)
    await link.aclose()


async def test_closing_the_link_cuts_a_request_in_flight_and_refuses_new_ones() -> None:
    blocked = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        blocked.set()
        with contextlib.suppress(ConnectionError):
            await reader.read(65536)  # answers nothing; the link resets the connection when it closes
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    link = ProxyLink("127.0.0.1", listener.sockets[0].getsockname()[1], connect_timeout=5)
    waiting = asyncio.create_task(get(link))
    await blocked.wait()
    await link.aclose()
    with pytest.raises(ConnectionError):
        await waiting
    with pytest.raises(ConnectionError, match="closed"):
        await get(link)
    listener.close()
