"""The method judged from a compressed body, and the heads whose body servers read two ways
(UI re-review, MEDIUM-2): the one reading the proxy's policy, its approval and the MCP front's
question share (:func:`judged_method`)."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from clavis_mcp.vault.method_overrides import UNREADABLE, ambiguous_body_headers, judged_method

FORM, JSON = "application/x-www-form-urlencoded", "application/json"
CODED = [
    ("gzip-json", JSON, "gzip", gzip.compress(b'{"_method":"DELETE"}')),
    ("deflate-json", JSON, "deflate", zlib.compress(b'{"_method":"DELETE"}')),
    ("br-form", FORM, "br", brotli.compress(b"_method=DELETE")),
    ("zstd-form", FORM, "zstd", zstandard.ZstdCompressor().compress(b"_method=DELETE")),
    ("a-chain-deflate-then-gzip", JSON, "deflate, gzip", gzip.compress(zlib.compress(b'{"_method":"DELETE"}'))),
    ("upper-case-coding", JSON, "GZIP", gzip.compress(b'{"_method":"DELETE"}')),
]


@pytest.mark.parametrize(("content_type", "coding", "body"), [c[1:] for c in CODED], ids=[c[0] for c in CODED])
def test_a_method_override_in_a_compressed_body_is_judged_decompressed(
    content_type: str, coding: str, body: bytes
) -> None:
    assert judged_method("POST", [], "", content_type, coding, body) == (
        "POST (the body field _method: DELETE)",
        "DELETE",
    )


UNJUDGEABLE = [
    ("past-64-kib", gzip.compress(b'{"pad":"' + b"a" * 70_000 + b'","_method":"GET"}'), "more than 64 KiB"),
    ("not-gzip", b"\x1f\x8bnot gzip", "does not decode"),
    ("cut-short", gzip.compress(b'{"_method":"DELETE"}')[:-6], "does not decode"),
]


@pytest.mark.parametrize(("body", "why"), [c[1:] for c in UNJUDGEABLE], ids=[c[0] for c in UNJUDGEABLE])
def test_a_compressed_body_that_cannot_be_read_whole_is_judged_any_method(body: bytes, why: str) -> None:
    shown, judged = judged_method("GET", [], "", JSON, "gzip", body)
    assert judged == UNREADABLE and why in shown


def test_a_compressed_body_of_a_type_no_framework_reads_fields_from_is_not_decoded() -> None:
    body = b"\x1f\x8bnot gzip, and not read"
    assert judged_method("PUT", [], "", "application/octet-stream", "gzip", body) == ("PUT", "PUT")


AMBIGUOUS = [
    ("two-content-types", [("Content-Type", FORM), ("Content-Type", JSON)], "more than one Content-Type header"),
    ("two-spellings-of-content-type", [("content-type", FORM), ("Content_Type", JSON)],
     "more than one Content-Type header"),
    ("two-content-encodings", [("Content-Encoding", "gzip"), ("Content-Encoding", "br")],
     "more than one Content-Encoding header"),
    ("a-list-in-one-content-type", [("Content-Type", f"{FORM}, {JSON}")],
     "a Content-Type header naming more than one media type"),
    ("a-list-after-a-parameter", [("Content-Type", f"{JSON}; charset=utf-8,{FORM}")],
     "a Content-Type header naming more than one media type"),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "why"), [c[1:] for c in AMBIGUOUS], ids=[c[0] for c in AMBIGUOUS])
def test_a_body_described_two_ways_is_ambiguous(headers: list[tuple[str, str]], why: str) -> None:
    assert ambiguous_body_headers(headers) == why


PLAIN = [
    ("one-of-each", [("Content-Type", JSON), ("Content-Encoding", "deflate, gzip"), ("Accept", "a, b")]),
    ("a-comma-inside-a-quoted-boundary", [("Content-Type", 'multipart/form-data; boundary="a,b"')]),
    ("none", []),
]


@pytest.mark.parametrize("headers", [c[1] for c in PLAIN], ids=[c[0] for c in PLAIN])
def test_a_body_described_once_is_not_ambiguous(headers: list[tuple[str, str]]) -> None:
    assert ambiguous_body_headers(headers) is None
