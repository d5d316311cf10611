"""A head handed over in process gets h11's verdict (proxy/direct_head.py), field by field and as a
whole, and the framing fields the front checks for smuggling shapes."""

from __future__ import annotations

import random

import h11
import pytest

from clavis_mcp.proxy.direct_head import framing_of

HOST = (b"Host", b"127.0.0.1:8899")
# each list: what h11 takes, then (after None) what it refuses somewhere; the refused are drawn one time in ten
NAMES = [b"Host", b"host", b"Content-Length", b"content-length", b"Transfer-Encoding", b"X-Custom", b"Accept", b"te",
         None, b"X Custom", b"X:Custom", b"", b"X\x00", b"X\r\n", b"\xc3\xa9", b"x-\x7f"]  # fmt: skip
PIECES = [b"a", b"0", b"7", b"12", b" ", b"\t", b",", b", ", b"chunked", b"Chunked", b"gzip", b"\x01", b"\x7f",
          b"\x80", b"\xff", b"*/*", b"9" * 21, None, b"\r", b"\n", b"\r\n", b"\x00", b"\x0b", b"\x0c"]  # fmt: skip
METHODS = [b"GET", b"POST", b"M-SEARCH", None, b"G ET", b"", b"GET\r\n", b"\xc3\x89"]
TARGETS = [b"/s/a@h:443/v1", b"/a?b=%20", b"*", None, b"/a b", b"", b"/\x7f", b"/\x80"]


def draw[T](rng: random.Random, choices: list[T | None]) -> T:
    cut = choices.index(None)
    pick = choices[rng.randrange(cut + 1, len(choices))] if rng.random() < 0.1 else choices[rng.randrange(cut)]
    assert pick is not None
    return pick


def h11_accepts(method: bytes, target: bytes, fields: list[tuple[bytes, bytes]]) -> bool:
    try:
        h11.Request(method=method, target=target, headers=fields)
    except h11.LocalProtocolError:
        return False
    return True


def test_the_verdict_is_h11s_for_50000_random_heads() -> None:
    rng = random.Random(18)
    for _ in range(50_000):
        count = rng.randrange(5)
        fields = [
            (draw(rng, NAMES), b"".join(draw(rng, PIECES) for _ in range(rng.randrange(4)))) for _ in range(count)
        ]
        if rng.random() < 0.9:
            fields.insert(rng.randrange(len(fields) + 1), HOST)
        method, target = draw(rng, METHODS), draw(rng, TARGETS)
        framing = framing_of(method, target, tuple(fields))
        assert (framing is not None) == h11_accepts(method, target, fields), (method, target, fields)
        if framing is not None:
            assert framing == [n.lower() for n, _ in fields if n.lower() in (b"content-length", b"transfer-encoding")]


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [
        ([HOST, (b"X-A", b"1")], True),
        ([(b"X-A", b"1")], False),
        ([HOST, HOST], False),
        ([HOST, (b"X-A", b"a\r\nInjected: 1")], False),
        ([HOST, (b"X-A", b" padded")], False),
        ([HOST, (b"X-A", b"\x01")], True),
        ([HOST, (b"Content-Length", b"5, 5"), (b"content-length", b"5")], True),
        ([HOST, (b"Content-Length", b"5, 6")], False),
        ([HOST, (b"Content-Length", b"5"), (b"Content-Length", b"6")], False),
        ([HOST, (b"Content-Length", b"1" * 21)], False),
        ([HOST, (b"Transfer-Encoding", b"CHUNKED")], True),
        ([HOST, (b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], False),
        ([HOST, (b"Transfer-Encoding", b"gzip, chunked")], False),
    ],
    ids=[
        "plain",
        "no-host",
        "two-hosts",
        "crlf",
        "edge-space",
        "control",
        "equal-lengths",
        "listed-lengths",
        "two-lengths",
        "long-length",
        "chunked-any-case",
        "chunked-twice",
        "other-coding",
    ],  # fmt: skip
)
def test_heads_h11_refuses_are_refused(fields: list[tuple[bytes, bytes]], accepted: bool) -> None:
    assert h11_accepts(b"GET", b"/v1", fields) is accepted
    assert (framing_of(b"GET", b"/v1", tuple(fields)) is not None) is accepted
