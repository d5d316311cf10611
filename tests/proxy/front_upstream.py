"""A loopback HTTPS upstream for the base-URL front's tests: it records which TCP connection each
request came on (the client's port), and answers with the shapes the front must handle: a
secret split across SSE chunks, a 1 MiB body of known length, a brotli bomb, a transfer coding
other than chunked, trailers, a 101, headers in our namespace, and a head that never comes; and
the shapes of the front's review (F2-F7): a response framed two ways, bytes after a whole response
(once the connection is idle), a ``Connection`` header naming our headers; no answer at all, and an
illegal header line holding the words of other failures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import brotli
import trustme

from demo.echo_upstream import LoopbackHandler, running_tls

MIB = 1024 * 1024
LATE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
LATE_AFTER = 0.3  # long enough for the front to have pooled the connection


@dataclass(frozen=True)
class Seen:
    port: int  # the proxy's end of the upstream connection: one value per connection
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FrontUpstream:
    port: int
    seen: list[Seen]
    release: threading.Event = field(default_factory=threading.Event)
    late_sent: threading.Event = field(default_factory=threading.Event)

    def connections(self) -> set[int]:
        return {s.port for s in self.seen}

    def blob(self) -> str:
        return repr(self.seen)


def _secret(headers: dict[str, str]) -> str:
    value = headers.get("authorization") or headers.get("x-api-key") or "none"
    return value.removeprefix("Bearer ")


class _Handler(LoopbackHandler):
    seen: list[Seen]
    release: threading.Event
    late_sent: threading.Event

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.seen.append(Seen(self.client_address[1], self.command, self.path, headers, body))
        secret = _secret(headers).encode()
        match self.path.split("?")[0]:
            case "/slow":
                self.release.wait(timeout=10)
                self._send(200, b"late", [])
            case "/buffered":
                filler = b"a" * ((MIB - len(secret)) // 2)
                payload = (filler + secret + filler).ljust(MIB, b"a")
                self._send(200, payload, [("Content-Type", "application/octet-stream")])
            case "/bomb":
                payload = brotli.compress(b"\0" * (8 * MIB), quality=1)
                self._send(200, payload, [("Content-Type", "application/json"), ("Content-Encoding", "br")])
            case "/sse":
                event = b'data: {"token": "' + secret + b'"}\n\n'
                cut = event.index(secret) + len(secret) // 2
                self._raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for chunk in (event[:cut], event[cut:]):
                    self._raw(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self._raw(b"0\r\n\r\n")
            case "/transfer-coding":
                self._raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n" + secret)
                self.close_connection = True
            case "/trailers":
                self._raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Token\r\n\r\n")
                self._raw(b"2\r\nok\r\n0\r\nX-Token: " + secret + b"\r\n\r\n")
            case "/upgrade":
                self._raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: upgrade\r\n\r\n" + secret)
                self.close_connection = True
            case "/cl-te":
                self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"a" * MIB
                self._raw(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
            case "/unknown-coding":
                self._raw(b"HTTP/1.1 200 OK\r\nContent-Encoding: xyz\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"a" * MIB
                self._raw(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\n")
            case "/late" | "/head-late":
                self._raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + (b"" if self.command == "HEAD" else b"ok"))
                time.sleep(LATE_AFTER)
                self._raw(LATE)
                self.late_sent.set()
            case "/connection-named":
                named = [("Connection", "keep-alive, X-Clavis-Redactions, X-Clavis-Audit-Id")]
                self._send(200, b'{"t": "' + secret + b'"}', [("Content-Type", "application/json"), *named])
            case "/silent":  # the connection closed with no answer at all
                self.close_connection = True
            case "/closed-line":  # an illegal header line that happens to hold words of other failures
                self._raw(b"HTTP/1.1 200 OK\r\nX-Why: closed Transfer-Encoding\x00\r\n\r\n")
                self.close_connection = True
            case "/ours":
                self._send(200, b"{}", [("X-Clavis-Audit-Id", "forged"), ("X-Clavis-Redactions", "0")])
            case _:
                payload = json.dumps({"path": self.path, "headers": headers}).encode()
                self._send(200, payload, [("Content-Type", "application/json")])

    do_POST = do_PUT = do_HEAD = do_GET

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _raw(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except ConnectionError:  # the front closed the connection on a shape it refuses
            self.close_connection = True


@contextmanager
def front_upstream(leaf: trustme.LeafCert) -> Iterator[FrontUpstream]:
    seen: list[Seen] = []
    release, late_sent = threading.Event(), threading.Event()
    handler = type("Handler", (_Handler,), {"seen": seen, "release": release, "late_sent": late_sent})
    with running_tls(leaf, handler) as port:
        try:
            yield FrontUpstream(port, seen, release, late_sent)
        finally:
            release.set()
