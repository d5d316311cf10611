"""Re-attack of issue 12 point 9 (review F6): an upstream's informational (1xx) responses.

mitmproxy 12 read an HTTP/1 upstream's ``103 Early Hints`` or unsolicited ``100 Continue`` as
the final response: the client got the 1xx with the proxy's own headers on it, and the real
response never arrived (the client hung). The proxy answers ``Expect: 100-continue`` itself,
so every 1xx but ``101`` from an upstream is dropped (an HTTP/2 upstream's already were); the
client gets the final response, and nothing of the 1xx (a secret in its ``Link`` included).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.proxy.reflecting_parts as parts
from clavis_mcp.proxy import EmbeddedProxy
from tests.proxy.test_attack_response_parts import CALL_SERVICE, curl, leaked, parts_proxy  # noqa: F401

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FINAL = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
INTERIM = {
    "/early-hints": lambda s: f"HTTP/1.1 103 Early Hints\r\nLink: </a.css?k={s}>; rel=preload\r\n\r\n{FINAL}",
    "/continue": lambda s: f"HTTP/1.1 100 Continue\r\nX-Echo: {s}\r\n\r\n{FINAL}",
    "/processing-twice": lambda s: f"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\n\n{FINAL}",
    "/forged-refusal": lambda s: f"HTTP/1.1 103 Early Hints\r\nX-Clavis-Refused: forged\r\n\r\n{FINAL}",
}


@pytest.fixture(autouse=True)
def interim_routes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for path, route in INTERIM.items():
        monkeypatch.setitem(parts.RAW_ROUTES, path, lambda secret, route=route: route(secret).encode())
    yield


@pytest.mark.parametrize("path", list(INTERIM))
@pytest.mark.parametrize(
    "extra", [("--http1.1",), ("--http2",), ("--http1.1", *CALL_SERVICE)], ids=["h1", "h2", "h1-call-service"]
)
async def test_an_upstream_informational_response_never_stands_for_the_final_one(
    parts_proxy: EmbeddedProxy,  # noqa: F811
    home: Path,
    path: str,
    extra: tuple[str, ...],
) -> None:
    code, out, err = await curl(parts_proxy, home, path, *extra)
    assert code == 0, err
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", out[:200]
    assert body == b"ok"
    assert b" 10" not in head.split(b"\r\n")[0] and not leaked(out)
    assert b"forged" not in out
