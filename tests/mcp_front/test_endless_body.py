"""A response body of unknown length to call_service is streamed and read only up to the bound
(issue 20 point 8).

The embedded proxy kept a call_service response whole whenever it had no Content-Length (so it
could put the audit id in the headers): an endless chunked body took the MCP server to gigabytes.
The audit id and counts now reach the gateway in process, so such a body is streamed like any
other, and the gateway stops reading at its download bound. One call in a fresh process
(:mod:`tests.bomb_worker`), which reports its peak RSS before and after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from clavis_mcp.mcp_front.calls import CallLimits
from clavis_mcp.vault import Vault, validate_secret
from demo.echo_upstream import LoopbackHandler, serve_https
from tests.bombs import MIB, run_worker
from tests.conftest import SECRET, make_service

pytestmark = pytest.mark.e2e
BODY_MIB = 512  # far past the gateway's download bound
CHUNK = b"a" * (64 * 1024)


class Endless:
    def __init__(self, ca: trustme.CA) -> None:
        class Handler(LoopbackHandler):
            def do_GET(self) -> None:
                if not self.path.startswith("/endless"):
                    body = b'{"ok": true}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for _ in range(BODY_MIB * MIB // len(CHUNK)):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader stopped at its bound

        self.server, _ = serve_https(ca, Handler, ("127.0.0.1", "localhost"))

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def endless(vault: Vault, upstream_ca: trustme.CA) -> Iterator[Endless]:
    upstream = Endless(upstream_ca)
    vault.add_service(make_service("api", upstream.url("").removeprefix("https://"), local=True),
                      validate_secret(SECRET))  # fmt: skip
    try:
        yield upstream
    finally:
        upstream.server.shutdown()
        upstream.server.server_close()


def test_endless_chunked_body_to_call_service_is_cut_at_the_download_bound_in_bounded_memory(
    endless: Endless,
) -> None:
    report = run_worker("call_service", endless.url("/small"), endless.url("/endless"))
    outcome = report["bomb"]
    assert not outcome["is_error"], outcome["text"]
    assert "cut to" in outcome["text"]
    grew = report["peak_mib"] - report["baseline_mib"]
    print(f"peak RSS above the warm call: {grew:.0f} MiB for a {BODY_MIB} MiB body")
    assert grew < 2 * CallLimits().max_download / MIB, report
