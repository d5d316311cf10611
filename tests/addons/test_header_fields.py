"""The one-pass header reads give what mitmproxy's ``Headers.get`` and ``pop`` give."""

from __future__ import annotations

import pytest
from mitmproxy import http

from clavis_mcp.addons.header_fields import drop_headers, header_values

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
