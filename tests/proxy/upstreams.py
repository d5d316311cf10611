"""A hostile loopback HTTPS upstream: it reflects the credential it receives in every way an
API can send it back (headers, encodings, compression, chunked and server-sent-event streams
with the value split across chunks), and reports rate limits. What it received is recorded."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import brotli
import trustme
import zstandard

from demo.echo_upstream import LoopbackHandler, Received, running_tls


def _credential(headers: list[tuple[str, str]]) -> str:
    for name, value in headers:
        if name.lower() in ("authorization", "x-api-key"):
            return value.removeprefix("Bearer ")
    return "none"


def _compress(encoding: str, data: bytes) -> bytes:
    match encoding:
        case "gzip":
            return gzip.compress(data)
        case "deflate":
            return zlib.compress(data)
        case "br":
            return brotli.compress(data)
        case "zstd":
            return zstandard.ZstdCompressor().compress(data)
    return data


class Reflector(LoopbackHandler):
    received: list[Received]
    gate: threading.Event  # set by a test once it has read the first event of /sse-gated
    gate_seen: list[bool]  # whether the gate was open when the upstream went on

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = list(self.headers.items())
        self.received.append(Received(self.command, self.path, headers, body))
        secret = _credential(headers)
        route = self.path.split("?")[0].strip("/").split("/")
        match route:
            case ["headers"]:
                self._send(
                    302,
                    b"moved",
                    [
                        ("Location", f"https://elsewhere.test/cb?token={quote(secret, safe='')}"),
                        ("Set-Cookie", f"session={secret}; Path=/"),
                        ("WWW-Authenticate", f'Bearer realm="x", error_description="bad token {secret}"'),
                        ("X-Echo", base64.b64encode(secret.encode()).decode()),
                    ],
                )
            case ["encoded"]:
                forms = {
                    "url": quote(secret, safe=""),
                    "b64": base64.b64encode(secret.encode()).decode(),
                    "b64url": base64.urlsafe_b64encode(b"x" + secret.encode()).decode(),
                    "hex": secret.encode().hex(),
                    "json": json.dumps({"k": secret}),
                    "basic": base64.b64encode(f"user:{secret}".encode()).decode(),
                }
                self._send(200, json.dumps(forms).encode(), [("Content-Type", "application/json")])
            case ["compressed", encoding]:
                payload = _compress(encoding, json.dumps({"echo": secret}).encode())
                self._send(200, payload, [("Content-Type", "application/json"), ("Content-Encoding", encoding)])
            case ["sse"]:
                event = f"data: {json.dumps({'token': secret})}\n\n".encode()
                cut = event.index(secret.encode()) + len(secret) // 2
                self._chunked([b": hello\n\n", event[:cut], event[cut:], b"data: [DONE]\n\n"], "text/event-stream")
            case ["sse-gated"]:
                event = f"data: {json.dumps({'token': secret})}\n\n".encode()
                cut = event.index(secret.encode()) + len(secret) // 2
                self._chunked([event[:cut], event[cut:]], "text/event-stream", finish=False)
                self.gate_seen.append(self.gate.wait(timeout=10))
                self._chunked([b"data: [DONE]\n\n"], None)
            case ["chunked", encoding]:
                payload = _compress(encoding, (json.dumps({"echo": secret}) + " " * 2000).encode())
                cut = len(payload) // 2
                self._chunked([payload[:cut], payload[cut:]], "application/json", encoding)
            case ["big"]:
                filler = b"a" * (1_200_000)
                self._send(200, filler + secret.encode() + filler, [("Content-Type", "application/octet-stream")])
            case ["ratelimit"]:
                self._send(
                    200,
                    b"{}",
                    [
                        ("Content-Type", "application/json"),
                        ("x-ratelimit-remaining-requests", "41"),
                        ("RateLimit", '"default";r=41;t=20'),
                        ("Retry-After", "7"),
                    ],
                )
            case ["empty", code]:
                self.send_response(int(code))  # 204 / 304: no body, no length, no chunking
                self.end_headers()
            case ["status", code]:
                self._send(int(code), f"upstream error, you sent {secret}".encode(), [("Content-Type", "text/plain")])
            case ["reset"]:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.close_connection = True
                socket.socket.close(self.connection)  # RST, without a TLS close_notify
            case _:
                payload = json.dumps({"path": self.path, "headers": dict(headers)}).encode()
                self._send(200, payload, [("Content-Type", "application/json")])

    do_POST = do_HEAD = do_GET

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(
        self, chunks: list[bytes], content_type: str | None, encoding: str = "identity", finish: bool = True
    ) -> None:
        """Send ``chunks``; ``content_type`` None continues a body started by an earlier call."""
        if content_type is not None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if encoding != "identity":
                self.send_header("Content-Encoding", encoding)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            time.sleep(0.02)  # separate TCP segments, so the proxy sees separate chunks
        if finish:
            self.wfile.write(b"0\r\n\r\n")


@contextmanager
def reflecting_upstream(
    leaf: trustme.LeafCert, gate: threading.Event | None = None, gate_seen: list[bool] | None = None
) -> Iterator[tuple[int, list[Received]]]:
    """Serve :class:`Reflector` with ``leaf``'s certificate; yield its port and what it received."""
    received: list[Received] = []
    attributes = {
        "received": received,
        "gate": gate or threading.Event(),
        "gate_seen": [] if gate_seen is None else gate_seen,
    }
    handler = type("Handler", (Reflector,), attributes)
    with running_tls(leaf, handler) as port:
        yield port, received


@dataclass
class V6Upstream:
    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)  # (Host, Authorization) of each request


class _AuthorizationEcho(LoopbackHandler):
    """Answers with the Authorization it received, so the response carries the injected key."""

    upstream: V6Upstream

    def do_GET(self) -> None:
        authorization = self.headers.get("Authorization", "")
        self.upstream.seen.append((self.headers.get("Host", ""), authorization))
        body = json.dumps({"authorization": authorization}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def ipv6_echo(ca: trustme.CA) -> Iterator[V6Upstream]:
    """An HTTPS upstream on ::1 (its certificate names the IP address ::1) that echoes Authorization."""
    upstream = V6Upstream(0)
    handler = type("Echo", (_AuthorizationEcho,), {"upstream": upstream})
    with running_tls(ca.issue_cert("::1"), handler, "::1") as port:
        upstream.port = port
        yield upstream
