"""MCP over stdio, as Claude Desktop runs clavis-mcp: every request answered, stopped cleanly.

Two things the SDK's ``MCPServer.run("stdio")`` does not do (mcp 2.3):

- **Answer every line.** Lines its transport cannot validate are dropped without a reply
  (``jsonrpc_screen.py`` says which and why); here each line is screened first and a request
  the SDK would drop gets its JSON-RPC error.
- **Stop on a signal.** SIGINT was ignored until stdin closed, then ended in a traceback;
  SIGTERM killed the process with calls in flight, after their requests had left with the
  credential and before their records were written. Here SIGTERM and SIGINT stop reading new
  requests, give the calls in flight ``GRACE`` seconds to be answered, then end the input, which
  makes the server refuse the rest; the gateway waits for the proxy to record each one
  (``Gateway.aclose``) before the proxy stops. The end of input waits the same way. Which calls
  are in flight is kept by their parsed ids (a pattern over the text missed long ids, and every
  stop then waited the whole grace): each reply the server writes names the request it answers,
  and a request the client cancelled, which gets no reply, is settled by the SDK's
  ``on_request_unanswered`` hook.

The framing is the SDK's (``stdio_server``), less the tasks and a stream on the way in: the
server takes each screened message from the lines themselves (``_Lines`` is its read stream,
and on a pipe the task that asks reads it), already validated, where a reader task of ours and
the SDK's with a memory stream stood between (three more turns of the event loop a request) and
every line was validated a second time. Replies go to a
writer task, as there, so a handler cancelled mid-reply never leaves half a line on the wire;
but through a queue that takes no turn of the loop when it has room (an anyio memory stream
takes one to send and one to receive). As the SDK's transport does, fd 0 is pointed at the null
device and fd 1 at stderr while serving, so nothing a library prints can corrupt the wire.

Where stdin and stdout are pipes or sockets (as Claude Desktop and every MCP client start a
server), they are read and written on the event loop, non-blocking: handing each message to a
thread and back cost a call over stdio two thread switches each way. A terminal or a file (a
person trying the server, a replayed script) is read and written by a thread, blocking: a
terminal's non-blocking mode would be its shell's too. A pipe's blocking mode is put back as it
was when serving ends, as it is shared with whoever else holds the pipe. (Measured with
``python -m bench.compare OTHER --workload mcp``: call_service p50 0.93x, server CPU -10%.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Any, Self

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCError, JSONRPCResponse, RequestId

from .jsonrpc_screen import screen

GRACE = 10.0  # seconds the calls in flight get to finish after SIGTERM or SIGINT
STOP_MARGIN = 10.0  # then how long the server may take to record and stop before it is cancelled
QUEUED_LINES = 8  # lines read ahead of the server: a client that floods waits for it
READ = 64 * 1024  # bytes per read of a pipe


def _on_loop(fd: int) -> bool:
    """Whether ``fd`` is a pipe or a socket, which the event loop can wait on without a thread
    (not on Windows, whose event loop cannot wait on a pipe's descriptor)."""
    if os.name == "nt":
        return False
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _Wire:
    """stdout: each message written whole, in one piece, under a lock (replies come from two places)."""

    def __init__(self, fd: int, on_loop: bool) -> None:
        self._fd, self._on_loop = fd, on_loop
        # fast_acquire: an uncontended write goes out at once; anyio's default first yields to the
        # loop, which ran whatever else was ready (the proxy's work after an answer) before the reply
        self._lock = anyio.Lock(fast_acquire=True)
        # ids (as parsed, of any length or size) of requests handed to the server and not yet settled
        self.in_flight: set[RequestId] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def sent_on(self, request_id: RequestId) -> None:
        self.in_flight.add(request_id)
        self.idle.clear()

    def settled(self, request_id: RequestId) -> None:
        """``request_id`` is answered, or will never be (the client cancelled it)."""
        self.in_flight.discard(request_id)
        if not self.in_flight:
            self.idle.set()

    async def unanswered(self, request_id: RequestId) -> None:
        """The server's hook for a request it settles without a reply (the client cancelled it)."""
        self.settled(request_id)

    async def write(self, text: str, answers: RequestId | None = None) -> None:
        """Write ``text``; when it is the reply to request ``answers``, that request is settled."""
        data = text.encode("utf-8", "replace")
        async with self._lock:
            if self._on_loop:
                await self._write_on_loop(data)
            else:
                await anyio.to_thread.run_sync(self._write_all, data)
        if answers is not None:
            self.settled(answers)

    async def _write_on_loop(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:  # the pipe is full: the client is slow to read
                await anyio.wait_writable(self._fd)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    async def flush(self) -> None:
        return None  # every write is complete when it returns


class _Pipe:
    """A pipe's (or socket's) lines, read on the loop by the task that asks for the next one: no
    reader task between it and the server, whose hand-over cost a turn of the event loop a request.
    After :meth:`close` (a signal) nothing more is read; the whole lines already read are served."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer, self._searched = bytearray(), 0
        self._eof = self._closed = False
        self._waiting: anyio.CancelScope | None = None

    async def next_line(self) -> str | None:
        while True:
            if (end := self._buffer.find(b"\n", self._searched)) >= 0:
                line = self._buffer[: end + 1].decode("utf-8", "replace")
                del self._buffer[: end + 1]
                self._searched = 0
                return line
            self._searched = len(self._buffer)
            if self._closed:
                return None
            if self._eof:  # a last line without its newline is handed on, as the thread's reader does
                rest, self._buffer = self._buffer, bytearray()
                return rest.decode("utf-8", "replace") if rest else None
            try:
                data = os.read(self._fd, READ)
            except BlockingIOError:
                with anyio.CancelScope() as self._waiting:
                    await anyio.wait_readable(self._fd)
                self._waiting = None
                continue
            except OSError:  # the client's end is broken: as the end of input
                data = b""
            self._buffer += data
            self._eof = not data

    def close(self) -> None:
        self._closed = True
        if self._waiting is not None:
            self._waiting.cancel()


class _ClosedOnExit:
    """A stream the SDK enters as a context manager: leaving it closes it."""

    async def aclose(self) -> None:
        return None  # the lines end with the input, or with the server's task group

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class _Lines(_ClosedOnExit):
    """stdin as the server's stream of screened messages: read on the loop (a pipe) or by a daemon
    thread (a blocked read must never hold up the exit), ended by EOF or by :meth:`close` (a signal)."""

    def __init__(self, fd: int, wire: _Wire, on_loop: bool) -> None:
        self._fd, self._wire = fd, wire
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUED_LINES)  # the thread's lines
        self._loop = asyncio.get_running_loop()
        self._pipe = _Pipe(fd) if on_loop else None
        self._ended = False
        if not on_loop:
            threading.Thread(target=self._read, name="clavis-mcp stdin", daemon=True).start()

    def _read(self) -> None:
        with os.fdopen(self._fd, "rb", closefd=False) as source:
            for raw in source:
                self._put(raw.decode("utf-8", "replace"))
        self._put(None)

    def _put(self, line: str | None) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._queue.put(line), self._loop).result()
        except RuntimeError:  # the loop is gone: the server has stopped
            pass

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            return
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self._ending = self._loop.create_task(self._queue.put(None))

    async def receive(self) -> SessionMessage:
        """The next message for the server; ``EndOfStream`` once the input has ended."""
        while not self._ended and (line := await self._next_line()) is not None:
            screened = screen(line)
            if screened.reply is not None:
                await self._wire.write(screened.reply + "\n")
            if screened.forward is not None:
                if screened.request_id is None:
                    return SessionMessage(screened.forward)
                self._wire.sent_on(screened.request_id)
                unanswered = partial(self._wire.unanswered, screened.request_id)
                return SessionMessage(screened.forward, ServerMessageMetadata(on_request_unanswered=unanswered))
        if not self._ended:
            self._ended = True
            with anyio.move_on_after(GRACE):  # stopped by a signal: the calls in flight may finish first
                await self._wire.idle.wait()
        raise anyio.EndOfStream

    async def _next_line(self) -> str | None:
        return await (self._queue.get() if self._pipe is None else self._pipe.next_line())

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


def _claim_standard_streams() -> tuple[int, int]:
    """Private copies of fds 0 and 1 for the wire; fd 0 then reads nothing and fd 1 writes to stderr."""
    wire_in, wire_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return wire_in, wire_out


async def _serve(server: MCPServer[Any], wire_in: int, wire_out: int) -> None:
    on_loop = {fd: _on_loop(fd) for fd in (wire_in, wire_out)}
    blocking = {fd: os.get_blocking(fd) for fd, loop in on_loop.items() if loop}
    for fd in blocking:
        os.set_blocking(fd, False)
    try:
        await _serve_on(server, wire_in, wire_out, on_loop)
    finally:
        for fd, was in blocking.items():
            os.set_blocking(fd, was)


async def _serve_on(server: MCPServer[Any], wire_in: int, wire_out: int, on_loop: dict[int, bool]) -> None:
    wire = _Wire(wire_out, on_loop[wire_out])
    lines = _Lines(wire_in, wire, on_loop[wire_in])
    lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async runs; there is no public name for it
    async with anyio.create_task_group() as group:
        group.start_soon(_stop_on_signal, lines, group.cancel_scope)
        async with _replies(wire) as write:
            await lowlevel.run(lines, write, lowlevel.create_initialization_options())
        group.cancel_scope.cancel()  # served to the end: stop waiting for a signal


class _Replies(_ClosedOnExit):
    """The server's write stream: each message handed to :meth:`write_each`, which writes it whole."""

    def __init__(self, wire: _Wire) -> None:
        self._wire = wire
        self._queue: asyncio.Queue[SessionMessage | None] = asyncio.Queue(1)  # a slow reader holds the server up
        self._closed = False

    async def send(self, message: SessionMessage) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        await self._queue.put(message)

    async def aclose(self) -> None:
        """No more messages: the writer ends once those sent are written."""
        if not self._closed:
            self._closed = True
            await self._queue.put(None)

    async def write_each(self) -> None:
        while (message := await self._queue.get()) is not None:
            reply = message.message
            answers = reply.id if isinstance(reply, JSONRPCResponse | JSONRPCError) else None
            await self._wire.write(reply.model_dump_json(by_alias=True, exclude_unset=True) + "\n", answers)


@asynccontextmanager
async def _replies(wire: _Wire) -> AsyncIterator[_Replies]:
    """The server's write stream, written by a task of its own until the server closes it."""
    replies = _Replies(wire)
    async with anyio.create_task_group() as group:
        group.start_soon(replies.write_each)
        yield replies
        await replies.aclose()  # (the server closes it as it stops; this is for a server that did not)


async def _stop_on_signal(lines: _Lines, scope: anyio.CancelScope) -> None:
    """No new requests; the calls in flight get ``GRACE`` seconds, then the end of input makes the
    server answer the rest "Connection closed" and cancel them (the proxy records each: see
    ``Gateway.aclose``). Should the server not end by itself, it is cancelled."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            lines.close()
            await anyio.sleep(GRACE + STOP_MARGIN)
            scope.cancel()
            return


def run_stdio(server: MCPServer[Any]) -> None:
    """Serve MCP on stdin and stdout until stdin closes or a SIGTERM or SIGINT; no traceback."""
    wire_in, wire_out = _claim_standard_streams()
    try:
        anyio.run(_serve, server, wire_in, wire_out)
    except KeyboardInterrupt:  # before the signal receiver was up, or a second Ctrl-C
        pass
