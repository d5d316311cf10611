"""Review 7, M1: every field of a call_service result that the upstream wrote is scrubbed as the
model reads it. The upstream quotes the credential it received in its Content-Type, one ``-``
percent-escaped (a mixture no listed spelling holds), with a binary body: the ``headers`` copy was
scrubbed, but ``binary.content_type`` and the text summary carried the whole secret.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import trustme
from mcp import Client

from clavis_mcp.vault import Vault
from demo.echo_upstream import LoopbackHandler
from tests.conftest import SECRET, local_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BINARY = b"\x00\x01\x02binary"


def mixed(secret: str) -> str:
    """The secret with its first ``-`` percent-escaped and the rest as is."""
    return secret.replace("-", "%2D", 1)


class QuotingUpstream(LoopbackHandler):
    """``/q?type=T&body=B``: Content-Type ``T; name=<credential, mixed>`` and a binary or text body;
    the credential also in a rate-limit header's value, an ETag, a Link and a request id."""

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        secret = mixed(self.headers.get("Authorization", "").removeprefix("Bearer "))
        body = BINARY if query["body"][0] == "binary" else b"hello"
        self.send_response(200)
        self.send_header("Content-Type", f"{query['type'][0]}; name={secret}")
        self.send_header("ETag", f'"{secret}"')
        self.send_header("X-Request-Id", secret)
        self.send_header("Link", f"<https://127.0.0.1/{secret}>; rel=next")
        self.send_header("X-RateLimit-Remaining", "7")
        self.send_header("X-RateLimit-Reset", secret)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream(upstream_ca: trustme.CA, vault: Vault) -> Iterator[int]:
    with local_upstream(upstream_ca, QuotingUpstream, vault) as port:
        yield port


def spellings(secret: str) -> list[str]:
    """The secret in the forms a reader could undo, and pieces of it long enough to matter."""
    forms = [secret, mixed(secret), quote(secret, safe=""), secret.encode().hex(), json.dumps(secret)[1:-1]]
    raw = secret.encode()
    forms += [base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")]
    return forms + [secret[8:], secret[-12:], secret[3:15], mixed(secret)[:14]]


def strings_of(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_of(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_of(item)


def leaks(result: Any) -> list[int]:
    """Which forms of the secret (by their index in ``spellings``, so that a failure prints none)
    show in the whole result: its text parts and every string of its structured content."""
    shown = [part.text.lower() for part in result.content if hasattr(part, "text")]
    shown += [text.lower() for text in strings_of(result.structured_content)]
    return [i for i, form in enumerate(spellings(SECRET)) if any(form.lower() in text for text in shown)]


@pytest.mark.parametrize("body", ["binary", "text"], ids=["binary-body", "text-body"])
async def test_call_service_shows_no_secret_a_content_type_quotes_percent_mixed_in_any_field_of_its_result(
    client: Client, upstream: int, body: str
) -> None:
    url = f"https://127.0.0.1:{upstream}/q?type=application/octet-stream&body={body}"
    result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
    structured = result.structured_content
    assert structured is not None and not result.is_error
    assert leaks(result) == []
    if body == "binary":
        assert structured["binary"]["content_type"] == "application/octet-stream; name=[REDACTED:api]"
        assert "binary body (application/octet-stream; name=[REDACTED:api]," in result.content[0].text


async def test_call_service_counts_the_secret_scrubbed_from_a_binary_bodys_content_type(
    client: Client, upstream: int
) -> None:
    url = f"https://127.0.0.1:{upstream}/q?type=application/octet-stream&body=binary"
    result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
    structured = result.structured_content
    assert structured is not None
    markers = json.dumps(structured).count("[REDACTED:api]")  # one per field scrubbed, binary's own included
    assert structured["binary"]["content_type"].endswith("name=[REDACTED:api]")
    assert structured["redactions"] >= markers
