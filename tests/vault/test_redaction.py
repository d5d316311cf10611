from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from vault import Secret
from vault.redaction import Redactor, forms_of, trie_pattern

SECRET = 'sk-live/abc+def=0123456789"quote'

ENCODINGS = {
    "literal": SECRET.encode(),
    "url": quote(SECRET, safe="").encode(),
    "json": json.dumps(SECRET)[1:-1].encode(),
    "hex": SECRET.encode().hex().encode(),
    "HEX": SECRET.encode().hex().upper().encode(),
    "base64": base64.b64encode(SECRET.encode()),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()),
}


def test_every_encoding_is_scrubbed() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    for name, encoded in ENCODINGS.items():
        out, count = redactor.redact(b"before " + encoded + b" after")
        assert count >= 1, name
        assert b"[REDACTED:svc]" in out, name
        assert SECRET.encode() not in out and encoded not in out, name


def test_base64_inside_a_larger_blob_at_every_alignment() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    for prefix in (b"", b"x", b"xy", b"xyz"):
        blob = base64.b64encode(prefix + b"{" + SECRET.encode() + b"}")
        out, count = redactor.redact(blob)
        assert count == 1, prefix


def test_basic_auth_pair_is_scrubbed_when_derived() -> None:
    pair = f"user:{SECRET}"
    redactor = Redactor("svc", [Secret(SECRET)], derived=[pair])
    out, count = redactor.redact(b"Basic " + base64.b64encode(pair.encode()))
    assert count >= 1 and base64.b64encode(pair.encode()) not in out


def test_text_without_secrets_is_untouched() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    text = b'{"ok": true, "data": [1, 2, 3]}'
    assert redactor.redact(text) == (text, 0)


def test_forms_never_include_tiny_fragments() -> None:
    assert all(len(form) >= 4 for form in forms_of("abcdefgh"))


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=48),
    before=st.binary(max_size=64),
    after=st.binary(max_size=64),
    encoding=st.sampled_from(["literal", "url", "json", "hex", "base64", "base64url"]),
)
def test_no_encoding_of_a_random_secret_survives(secret: str, before: bytes, after: bytes, encoding: str) -> None:
    encoded = {
        "literal": secret.encode(),
        "url": quote(secret, safe="").encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "hex": secret.encode().hex().encode(),
        "base64": base64.b64encode(before + secret.encode() + after),
        "base64url": base64.urlsafe_b64encode(before + secret.encode() + after),
    }[encoding]
    data = before + encoded + after if encoding not in ("base64", "base64url") else encoded
    out, count = Redactor("svc", [Secret(secret)]).redact(data)
    assert count >= 1
    assert secret.encode() not in out


def _encodings_of(secret: str, before: bytes, after: bytes) -> dict[str, bytes]:
    """Each encoding as it would appear in a body: base64 forms inside a larger blob."""
    return {
        "literal": secret.encode(),
        "url": quote(secret, safe="").encode(),
        "json": json.dumps(secret)[1:-1].encode(),
        "hex": secret.encode().hex().encode(),
        "HEX": secret.encode().hex().upper().encode(),
        "base64": base64.b64encode(before + secret.encode() + after),
        "base64url": base64.urlsafe_b64encode(before + secret.encode() + after),
    }


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=12, max_size=48),
    before=st.binary(max_size=64),
    after=st.binary(max_size=64),
    encoding=st.sampled_from(["literal", "url", "json", "hex", "HEX", "base64", "base64url"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_no_encoding_survives_a_stream_split_at_random_chunk_boundaries(
    secret: str, before: bytes, after: bytes, encoding: str, cuts: list[int]
) -> None:
    encoded = _encodings_of(secret, before, after)[encoding]
    body = encoded if encoding.startswith("base64") else before + encoded + after
    bounds = sorted({0, len(body), *(c for c in cuts if c < len(body))})
    chunks = [body[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    scrubber = Redactor("svc", [Secret(secret)]).stream()
    out = b"".join(scrubber.feed(chunk) for chunk in chunks) + scrubber.flush()
    assert scrubber.count >= 1
    assert secret.encode() not in out
    for form in forms_of(secret):
        assert form not in out


def test_streamed_output_equals_whole_body_redaction() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    body = b"data: " + SECRET.encode() + b"\n\n" + b"x" * 5000 + base64.b64encode(SECRET.encode()) + b"\n"
    scrubber = redactor.stream()
    streamed = b"".join(scrubber.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + scrubber.flush()
    assert streamed == redactor.redact(body)[0]
    assert scrubber.count == 2


def test_a_stream_holds_back_no_more_than_the_window() -> None:
    redactor = Redactor("svc", [Secret(SECRET)])
    scrubber = redactor.stream()
    sent = emitted = 0
    for _ in range(100):
        sent += 1000
        emitted += len(scrubber.feed(b"x" * 1000))
        assert sent - emitted <= redactor.longest - 1
    assert emitted + len(scrubber.flush()) == sent


def test_a_stream_passes_on_ordinary_text_at_once_and_holds_only_a_possible_start() -> None:
    scrubber = Redactor("svc", [Secret(SECRET)]).stream()
    assert scrubber.feed(b"data: hello\n\n") == b"data: hello\n\n"
    assert scrubber.feed(b"data: " + SECRET.encode()[:5]) == b"data: "
    assert scrubber.feed(SECRET.encode()[5:] + b"\n\n") == b"[REDACTED:svc]\n\n"
    assert scrubber.flush() == b"" and scrubber.count == 1


@settings(max_examples=300, deadline=None)
@given(
    forms=st.sets(
        st.binary(min_size=1, max_size=6).map(lambda b: bytes(c % 3 + 97 for c in b)), min_size=1, max_size=6
    ),
    data=st.binary(max_size=80).map(lambda b: bytes(c % 4 + 97 for c in b)),
)
def test_trie_pattern_matches_like_a_longest_first_alternation(forms: set[bytes], data: bytes) -> None:
    """The factored pattern must scrub exactly what the plain alternation (longest first) scrubs."""
    flat = re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    assert re.compile(trie_pattern(forms)).subn(b"X", data) == flat.subn(b"X", data)
