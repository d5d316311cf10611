"""Re-attack of issue 12 points 1 and 10 on the streamed path (review F3): a JSON body over the
streaming threshold in UTF-16 or UTF-32. ``requests``' ``resp.json()`` and httpx's ``.json()``
detect the encoding from the first bytes, so the agent reads the secret; the streamed scan looks
for the listed spellings only, whose UTF-16/32 forms would hold NUL bytes (which the Hyperscan
binding cannot take). So a streamed text body is scanned in UTF-8 after the encoding its first
bytes show, and sent back in that encoding, byte for byte where nothing was found.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault
from demo.echo_upstream import LoopbackHandler
from tests.conftest import local_upstream, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-16"])
async def test_a_streamed_json_body_in_utf16_or_utf32_never_shows_the_secret(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream_ca: trustme.CA, encoding: str
) -> None:
    class Reflecting(LoopbackHandler):
        def do_GET(self) -> None:
            secret = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            body = json.dumps({"pad": "x" * (2 << 20), "echo": secret}).encode(encoding)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with local_upstream(upstream_ca, Reflecting, vault) as port:
        async with proxy_client(proxy, home) as client:
            response = await client.get(f"https://127.0.0.1:{port}/x")
    assert response.json()["echo"] == "[REDACTED:api]"
    assert response.content.decode(encoding).startswith('{"pad": "xxx')  # still in its own encoding


async def test_a_streamed_text_body_in_utf16_that_is_not_valid_text_is_cut(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream_ca: trustme.CA
) -> None:
    """An odd byte at the end: no reader can decode it, and the scan cannot be sure; the body is cut."""

    class Broken(LoopbackHandler):
        def do_GET(self) -> None:
            secret = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            body = json.dumps({"pad": "x" * (2 << 20), "echo": secret}).encode("utf-16-le") + b"!"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with local_upstream(upstream_ca, Broken, vault) as port:
        async with proxy_client(proxy, home) as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"https://127.0.0.1:{port}/x")
