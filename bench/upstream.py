"""A fast loopback HTTPS upstream for the benchmarks: asyncio + h11, TCP_NODELAY, one process.

demo/echo_upstream.py is a threaded ``http.server``: fine for tests, but at 16 concurrent
clients it, not the proxy, would set the pace. This one answers from precomputed bodies so
the figures measure the proxy. Run as ``python -m bench.upstream CERT_CHAIN KEY``: it prints
its port on stdout and serves until its stdin closes.

Every answer echoes the request's ``Authorization`` header once, the way a careless API
does: through the clavis proxy that is the injected secret, so redaction has real work.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys

import h11

SMALL, LARGE, SSE = "/small", "/large", "/sse"
BYTES = "/bytes/"  # /bytes/N: N bytes, the echo first, written 64 KiB at a time (the body-size curve)
BLOCK = 64 * 1024
LARGE_SIZE = 1024 * 1024
SSE_EVENTS = 200


def _large_filler() -> bytes:
    line = json.dumps({"object": "embedding", "embedding": [0.0123, -0.0456, 0.0789] * 8}).encode() + b"\n"
    return (line * (LARGE_SIZE // len(line) + 1))[:LARGE_SIZE]


def small_body(authorization: str) -> bytes:
    return json.dumps(
        {"id": "chatcmpl-bench", "object": "chat.completion", "model": "bench-1",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench."}}],
         "usage": {"prompt_tokens": 9, "completion_tokens": 5}, "echo": {"authorization": authorization}}
    ).encode()  # fmt: skip


def sse_events(authorization: str) -> list[bytes]:
    first = b"data: " + json.dumps({"echo": {"authorization": authorization}}).encode() + b"\n\n"
    rest = [
        b"data: " + json.dumps({"index": i, "delta": {"content": f"token {i} of the stream "}}).encode() + b"\n\n"
        for i in range(1, SSE_EVENTS)
    ]
    return [first, *rest, b"data: [DONE]\n\n"]


class Upstream:
    def __init__(self) -> None:
        self._filler = _large_filler()

    def responses(self, target: str, authorization: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """Headers and body chunks for one request; each chunk is one write (one SSE event)."""
        if target == LARGE:
            echo = json.dumps({"echo": {"authorization": authorization}}).encode() + b"\n"
            body = echo + self._filler[len(echo) :]
            return [(b"content-type", b"application/x-ndjson"), (b"content-length", b"%d" % len(body))], [body]
        if target == SSE:
            return [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")], sse_events(authorization)
        if target == SMALL:
            body = small_body(authorization)
            return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))], [body]
        if target.startswith(BYTES) and target[len(BYTES) :].isdigit():
            return self._sized(int(target[len(BYTES) :]), authorization)
        return [(b"content-length", b"0")], []

    def _sized(self, size: int, authorization: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        echo = json.dumps({"echo": {"authorization": authorization}}).encode() + b"\n"
        block = self._filler[:BLOCK]
        first = (echo + block)[: min(size, BLOCK)]
        whole, tail = divmod(size - len(first), BLOCK)
        chunks = [first, *([block] * whole), *([block[:tail]] if tail else [])]
        return [(b"content-type", b"application/x-ndjson"), (b"content-length", b"%d" % size)], chunks

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    authorization = dict(event.headers).get(b"authorization", b"").decode("latin-1")
                    target = event.target.split(b"?")[0].decode()
                    headers, chunks = self.responses(target, authorization)
                    status = 200 if chunks else 404  # every known path answers with a body
                    writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                    for chunk in chunks:
                        writer.write(conn.send(h11.Data(data=chunk)))
                        if len(chunks) > 1:
                            await writer.drain()
                    writer.write(conn.send(h11.EndOfMessage()))
                    await writer.drain()
                elif isinstance(event, h11.ConnectionClosed):
                    return
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()


async def main(cert_chain: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_chain, key)
    server = await asyncio.start_server(Upstream().serve, "127.0.0.1", 0, ssl=context, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # serve until the parent closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
