"""The one-pass header reads give what mitmproxy's ``Headers.get`` and ``pop`` give."""

from __future__ import annotations

import pytest
from mitmproxy import http

from clavis_mcp.addons.header_fields import drop_headers, header_values, set_identity_body

FIELDS = [
    ((b"Content-Type", b"application/json"),),
    ((b"TE", b"trailers"), (b"te", b"gzip")),  # repeated, in two cases: joined as mitmproxy folds them
    ((b"Accept-Encoding", b"gzip"), (b"X-Other", b"1"), (b"ACCEPT-ENCODING", b"br")),
    ((b"Content-Type", b"text/plain; charset=\xff\xfe"),),  # not UTF-8: decoded as mitmproxy decodes it
    (),
]


@pytest.mark.parametrize("fields", FIELDS, ids=["one", "repeated", "interleaved", "not-utf8", "none"])
def test_header_values_are_what_headers_get_gives(fields: tuple[tuple[bytes, bytes], ...]) -> None:
    headers = http.Headers(fields)
    names = (b"content-type", b"te", b"accept-encoding", b"x-absent")
    values = header_values(headers, *names)
    assert {name: headers.get(name.decode()) for name in names} == {name: values.get(name) for name in names}


def test_drop_headers_removes_every_spelling_and_keeps_the_rest_in_order() -> None:
    headers = http.Headers([(b"A", b"1"), (b"Proxy-Authorization", b"x"), (b"B", b"2"), (b"PROXY-AUTHORIZATION", b"y")])
    drop_headers(headers, b"proxy-authorization")
    assert headers.fields == ((b"A", b"1"), (b"B", b"2"))


BODIES = [
    ((b"Content-Type", b"application/json"), (b"Content-Length", b"300")),
    ((b"Content-Encoding", b"gzip"), (b"content-length", b"120"), (b"X", b"1")),
    ((b"Content-Length", b"5"), (b"CONTENT-LENGTH", b"5"), (b"Content-Encoding", b"br"), (b"content-encoding", b"x")),
    ((b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"9")),
    ((b"transfer-encoding", b""),),
    ((b"X", b"1"),),
    (),
]


@pytest.mark.parametrize(
    "fields", BODIES, ids=["plain", "gzip", "repeated", "chunked", "empty-transfer-coding", "no-length", "none"]
)
def test_an_identity_body_is_set_as_dropping_the_encoding_and_set_content_set_it(
    fields: tuple[tuple[bytes, bytes], ...],
) -> None:
    ours, theirs = http.Response.make(200), http.Response.make(200)
    ours.headers.fields = theirs.headers.fields = fields
    set_identity_body(ours, b"[REDACTED:svc]")
    drop_headers(theirs.headers, b"content-encoding")
    theirs.set_content(b"[REDACTED:svc]")
    assert (ours.headers.fields, ours.raw_content) == (theirs.headers.fields, theirs.raw_content)
