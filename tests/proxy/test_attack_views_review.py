"""Review F2 follow-up through the real embedded proxy: one character of the credential escaped
among plain ones, in escapes of program text and mail, in a buffered body an HTTPS_PROXY agent reads.

The upstream reflects the credential it received with only its first ``-`` escaped (C octal,
a JavaScript identity escape, a zero-padded character reference, quoted-printable): no listed
spelling holds that, and the proxy's decoded views did not decode those escapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault
from demo.echo_upstream import LoopbackHandler
from tests.conftest import local_upstream, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ONE_ESCAPED = {  # how the first "-" of the credential is written
    "c-octal": "\\055",
    "javascript-identity-escape": "\\-",
    "zero-padded-reference": "&#x000002d;",
    "quoted-printable": "=2D",
}


class Reflecting(LoopbackHandler):
    """``/reflect?how=H``: ``{"error": "invalid key <credential>"}`` with its first ``-`` written as H."""

    def do_GET(self) -> None:
        how = ONE_ESCAPED[parse_qs(urlsplit(self.path).query)["how"][0]]
        secret = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = b'{"error": "invalid key ' + secret.replace("-", how, 1).encode() + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream(upstream_ca: trustme.CA, vault: Vault) -> Iterator[int]:
    with local_upstream(upstream_ca, Reflecting, vault) as port:
        yield port


async def test_a_buffered_reflection_with_one_character_in_a_program_text_or_mail_escape_reaches_the_agent_redacted(
    proxy: EmbeddedProxy, home: Path, upstream: int
) -> None:
    async with proxy_client(proxy, home) as agent:
        for how in ONE_ESCAPED:
            response = await agent.get(f"https://127.0.0.1:{upstream}/reflect?how={how}")
            redacted = json.loads(response.content) == {"error": "invalid key [REDACTED:api]"}
            assert response.status_code == 200 and redacted, how  # a failure must not print the secret
