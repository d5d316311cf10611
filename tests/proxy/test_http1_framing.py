"""The base-URL front's framing rules as a table: what is refused before h11 reads a head, and
which fields are the connection's own in every spelling a server reads as the same name."""

from __future__ import annotations

import h11
import pytest

from clavis_mcp.proxy.http1_framing import (
    name_key,
    response_framing,
    smuggling_shape,
    without_connection_named,
    without_hop_by_hop,
)

HEAD = b"POST /s/a/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
BOTH = "both Content-Length and Transfer-Encoding"


@pytest.mark.parametrize(
    ("head", "refused"),
    [
        (HEAD + b"Content-Length: 5\r\n\r\n", None),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", None),
        (HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", "more than one Content-Length header"),
        (
            HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (HEAD + b"content-length: 5\nTRANSFER-ENCODING : chunked\n\n", "both Content-Length and Transfer-Encoding"),
        (HEAD + b"Content-Length: 5\r\n\r\nContent-Length: 6\r\n", None),  # a body line, not a header
    ],
    ids=["length", "chunked", "two-lengths", "length-and-chunked", "bare-lf-and-case", "after-the-head"],
)
def test_smuggling_shapes_are_named_before_h11_reads_the_head(head: bytes, refused: str | None) -> None:
    assert smuggling_shape(head) == refused


def test_a_response_framed_two_ways_is_named() -> None:
    both = h11.Response(status_code=200, headers=[("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
    one = h11.Response(status_code=200, headers=[("Content-Length", "5")])
    assert response_framing(both) == "both Content-Length and Transfer-Encoding"
    assert response_framing(one) is None


@pytest.mark.parametrize(
    ("name", "key"),
    [(b"Transfer_Encoding", b"transfer-encoding"), (b"Keep-Alive_", b"keep-alive"),
     (b"Proxy.Connection", b"proxy-connection"), (b"X-Api-Key", b"x-api-key")],
    ids=["underscore", "trailing", "dot", "plain"],
)  # fmt: skip
def test_names_are_compared_as_servers_that_fold_separators_read_them(name: bytes, key: bytes) -> None:
    assert name_key(name) == key


def test_the_connections_own_fields_and_what_connection_names_are_dropped_from_a_request() -> None:
    fields = [(b"Connection", b"close, X-Drop"), (b"X-Drop", b"1"), (b"Transfer_Encoding", b"chunked"),
              (b"Accept", b"*/*"), (b"X-Split", b"a\r\nInjected: 1")]  # fmt: skip
    assert without_hop_by_hop(fields) == [(b"Accept", b"*/*")]


def test_an_upstream_connection_header_cannot_remove_our_headers_or_the_framing() -> None:
    fields = [(b"Connection", b"X-Clavis-Audit-Id, Content-Length"), (b"Content-Length", b"2"), (b"X-Other", b"1")]
    assert without_connection_named(fields) == [(b"Content-Length", b"2"), (b"X-Other", b"1")]
