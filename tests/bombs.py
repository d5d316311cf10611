"""Decompression bombs, and an HTTPS upstream that answers with them (issue 12 point 8).

A bomb is a run of zero bytes compressed in 1 MiB steps, so building one never holds what it
decodes to: a gigabyte of zeros is about 0.8 kB of brotli, 0.5 MB of gzip, 32 kB of zstd. Paths:
``/small`` answers ordinary JSON; ``/bomb/ENC/MIB`` a bomb of MIB MiB with its Content-Length
(a body the proxy buffers); ``/stream/ENC/MIB`` the same bomb as a chunked server-sent-event
stream of unknown length (a body the proxy streams).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import brotli
import trustme
import zstandard

from clavis_mcp.vault import Vault, validate_secret
from demo.echo_upstream import LoopbackHandler, serve_https
from tests.conftest import SECRET, make_service

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CHUNK = 16 * 1024  # what the streaming upstream writes at a time


def _compressor(encoding: str) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    match encoding:
        case "gzip":
            gzip = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            return gzip.compress, gzip.flush
        case "deflate":
            deflate = zlib.compressobj(6)
            return deflate.compress, deflate.flush
        case "br":
            br = brotli.Compressor(quality=5)
            return br.process, br.finish
        case "zstd":
            zstd = zstandard.ZstdCompressor().compressobj()
            return zstd.compress, zstd.flush
    raise ValueError(f"no bomb for {encoding!r}")


@functools.cache
def bomb(encoding: str, mib: int) -> bytes:
    """``mib`` MiB of zeros, compressed."""
    compress, finish = _compressor(encoding)
    zeros = bytes(MIB)
    return b"".join([compress(zeros) for _ in range(mib)] + [finish()])


@dataclass
class BombUpstream:
    server: ThreadingHTTPServer

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @classmethod
    def start(cls, ca: trustme.CA) -> BombUpstream:
        class Handler(LoopbackHandler):
            def do_GET(self) -> None:
                match self.path.strip("/").split("/"):
                    case ["bomb", encoding, mib]:
                        self._whole(bomb(encoding, int(mib)), encoding)
                    case ["stream", encoding, mib]:
                        self._stream(bomb(encoding, int(mib)), encoding)
                    case _:
                        self._whole(b'{"ok": true}', "identity")

            def _whole(self, body: bytes, encoding: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, body: bytes, encoding: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Encoding", encoding)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for start in range(0, len(body), CHUNK):
                        piece = body[start : start + CHUNK]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader stopped: what a bounded reader does

        server, _ = serve_https(ca, Handler, ("127.0.0.1", "localhost"))
        return cls(server)


@contextmanager
def bomb_service(vault: Vault, ca: trustme.CA) -> Iterator[BombUpstream]:
    """A bomb upstream, registered in ``vault`` as the local service ``api``."""
    server = BombUpstream.start(ca)
    vault.add_service(make_service("api", f"127.0.0.1:{server.port}", local=True), validate_secret(SECRET))
    try:
        yield server
    finally:
        server.stop()


def run_worker(scenario: str, *urls: str) -> dict[str, Any]:
    """Run :mod:`tests.bomb_worker` in a fresh process (it inherits CLAVIS_HOME); its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bomb_worker", scenario, *urls],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
