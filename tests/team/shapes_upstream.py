"""A loopback HTTPS upstream that answers in the shapes that trip the `clavis` SDK: a bare JSON
number, a 429 whose Retry-After is an HTTP date, plain text, and provider rate-limit headers.
Every answer also reflects the credential it received, for redaction to catch."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from contextlib import contextmanager

import trustme

from demo.echo_upstream import EchoUpstream, LoopbackHandler, Received, serve_https


class Shapes(LoopbackHandler):
    received: list[Received]

    def do_GET(self) -> None:
        self.received.append(Received(self.command, self.path, list(self.headers.items()), b""))
        credential = self.headers.get("Authorization", "")
        route = self.path.split("?")[0]
        headers = [("X-Echo", credential)]
        if route == "/number":
            self._send(200, b"42", "application/json", headers)
        elif route == "/ratelimited":
            when = email.utils.formatdate(time.time() + 30, usegmt=True)
            self._send(429, b'{"error": "slow down"}', "application/json", [*headers, ("Retry-After", when)])
        elif route == "/limits":
            limits = [("x-ratelimit-limit-requests", "100"), ("x-ratelimit-remaining-requests", "17")]
            self._send(200, b'{"ok": true}', "application/json", [*headers, *limits])
        else:
            self._send(200, f"plain text with {credential} in it".encode(), "text/plain", headers)

    def _send(self, status: int, body: bytes, kind: str, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def shapes_upstream(ca: trustme.CA) -> Iterator[EchoUpstream]:
    received: list[Received] = []
    handler = type("ShapesHandler", (Shapes,), {"received": received})
    server, thread = serve_https(ca, handler, ("127.0.0.1", "localhost"))
    up = EchoUpstream(server, thread, received)
    try:
        yield up
    finally:
        up.stop()
