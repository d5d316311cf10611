from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from mitmproxy import http

from addons.redact import STREAM_THRESHOLD, incremental_decoder, scrub_headers, should_stream
from vault import Vault, validate_secret
from vault.redaction import Redactor


@pytest.mark.parametrize(
    ("content_type", "length", "buffered", "streamed"),
    [
        ("text/event-stream", "10", True, True),
        ("text/event-stream; charset=utf-8", None, False, True),
        ("application/json", "100", False, False),
        ("application/json", None, False, True),
        ("application/json", None, True, False),
        ("application/json", str(STREAM_THRESHOLD + 1), True, True),
        ("application/json", "not-a-number", False, True),
    ],
    ids=["sse", "sse-unknown-length", "small-known", "unknown-length-agent", "unknown-length-call-service",
         "large", "bad-length"],
)  # fmt: skip
def test_which_responses_stream(content_type: str, length: str | None, buffered: bool, streamed: bool) -> None:
    assert should_stream(content_type, length, buffered) is streamed


BODY = b'{"echo": "sk-secret-value"}' * 50


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [("gzip", gzip.compress(BODY)), ("deflate", zlib.compress(BODY)), ("deflate", _raw_deflate(BODY)),
     ("br", brotli.compress(BODY)), ("zstd", zstandard.ZstdCompressor().compress(BODY)), ("identity", BODY)],
    ids=["gzip", "deflate-zlib", "deflate-raw", "br", "zstd", "identity"],
)  # fmt: skip
def test_incremental_decoders_decode_byte_by_byte(encoding: str, payload: bytes) -> None:
    decode = incremental_decoder(encoding)
    assert decode is not None
    assert b"".join(decode(payload[i : i + 1]) for i in range(len(payload))) == BODY


def test_unknown_encoding_has_no_decoder() -> None:
    assert incremental_decoder("compress") is None
    assert incremental_decoder("gzip, br") is None


def test_websocket_messages_from_the_server_are_scrubbed(vault: Vault) -> None:
    from mitmproxy import websocket
    from mitmproxy.test import taddons, tflow

    from addons.flowmeta import REDACTIONS, SERVICE
    from addons.redact import RedactResponse
    from tests.conftest import make_service

    secret = "sk-websocket-0123456789abcdef"
    vault.add_service(make_service("ws", "api.example.com"), validate_secret(secret))
    addon = RedactResponse(vault)
    with taddons.context(addon):
        flow = tflow.twebsocketflow()
        flow.metadata[SERVICE] = "ws"
        assert flow.websocket is not None
        for from_client in (False, True):
            flow.websocket.messages.append(websocket.WebSocketMessage(1, from_client, f"token {secret}".encode()))
            addon.websocket_message(flow)
        server_message, client_message = flow.websocket.messages[-2:]
        assert server_message.content == b"token [REDACTED:ws]"
        assert client_message.content == f"token {secret}".encode()  # the client's own bytes are its business
        assert flow.metadata[REDACTIONS] == 1


HEADER_SECRET = "sk-header-0123456789abcdef"


@pytest.mark.parametrize(
    ("fields", "scrubbed", "count"),
    [
        ([(b"Content-Type", b"application/json"), (b"X-Id", b"42")],
         [(b"Content-Type", b"application/json"), (b"X-Id", b"42")], 0),
        ([(b"Set-Cookie", b"a=1"), (b"Set-Cookie", f"k={HEADER_SECRET}".encode()), (b"set-cookie", b"b=2")],
         [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"k=[REDACTED:svc]"), (b"set-cookie", b"b=2")], 1),
        ([(b"Location", f"/cb?t={HEADER_SECRET}&u={HEADER_SECRET}".encode()), (b"X-Echo", HEADER_SECRET.encode())],
         [(b"Location", b"/cb?t=[REDACTED:svc]&u=[REDACTED:svc]"), (b"X-Echo", b"[REDACTED:svc]")], 3),
    ],
    ids=["clean-headers-untouched", "repeated-header-keeps-order", "several-in-several-headers"],
)  # fmt: skip
def test_scrub_headers(fields: list[tuple[bytes, bytes]], scrubbed: list[tuple[bytes, bytes]], count: int) -> None:
    headers = http.Headers(fields)
    assert scrub_headers(headers, Redactor("svc", [validate_secret(HEADER_SECRET)])) == count
    assert list(headers.fields) == scrubbed
