"""A real HTTPS server on 127.0.0.1 that records each request and echoes it back as JSON.

It stands in for an API host in the demo and the tests. Echoing the request headers in the
body is deliberate: it is what a careless or hostile API does with a credential, and what
redaction must catch.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class LoopbackHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with TCP_NODELAY (Nagle would add ~40 ms per request) and no access log."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve_tls(
    leaf: trustme.LeafCert, handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1"
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threaded HTTPS server on an ephemeral port of ``address`` (127.0.0.1 or ::1) with ``leaf``'s certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    server = (_IPv6Server if ":" in address else ThreadingHTTPServer)((address, 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def serve_https(
    ca: trustme.CA, handler: type[BaseHTTPRequestHandler], hostnames: tuple[str, ...]
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threaded HTTPS server on an ephemeral 127.0.0.1 port, its certificate issued by ``ca``."""
    return serve_tls(ca.issue_cert(*hostnames), handler)


@contextmanager
def running_tls(
    leaf: trustme.LeafCert, handler: type[BaseHTTPRequestHandler], address: str = "127.0.0.1"
) -> Iterator[int]:
    """:func:`serve_tls` for the length of a ``with`` block; yields its port."""
    server, _ = serve_tls(leaf, handler, address)
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class EchoUpstream:
    """``with EchoUpstream.start(ca) as up: ...``; ``up.received`` lists what arrived."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    received: list[Received] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @classmethod
    def start(cls, ca: trustme.CA, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")) -> EchoUpstream:
        received: list[Received] = []

        class Handler(LoopbackHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = Received(self.command, self.path, list(self.headers.items()), body)
                received.append(record)
                payload = json.dumps(
                    {"method": record.method, "path": record.path, "headers": dict(record.headers)}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        server, thread = serve_https(ca, Handler, hostnames)
        return cls(server, thread, received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> EchoUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_ca(ca: trustme.CA, path: Path) -> Path:
    ca.cert_pem.write_to_path(str(path))
    return path
