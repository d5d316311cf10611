from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from addons.redact import STREAM_THRESHOLD, incremental_decoder, should_stream


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
