"""The hop-by-hop filters of proxy/http1_framing.py keep exactly the fields they kept when each
field's name was looked up twice and its value scanned byte by byte (the form at 4350766)."""

from __future__ import annotations

import random

from clavis_mcp.proxy.http1_framing import (
    FRAMING_NAMES,
    HOP_BY_HOP,
    name_key,
    without_connection_named,
    without_hop_by_hop,
)

NAMES = [b"Accept", b"Connection", b"connection", b"Keep-Alive", b"Keep_Alive", b"TE", b"Transfer-Encoding",
         b"Content-Length", b"Content_Length", b"X-Custom", b"x-custom", b"X-Clavis-Audit-Id", b"Upgrade",
         b"-te-"]  # fmt: skip
VALUES = [b"1", b"close", b"keep-alive", b"X-Custom", b"x-custom, te", b" Keep_Alive ,close", b"a\r\nb", b"a\0",
          b"\n", b"Content-Length", b"x-clavis-audit-id", b""]  # fmt: skip


def reference_without_hop_by_hop(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = {name_key(t.strip()) for n, v in fields if name_key(n) == b"connection" for t in v.split(b",")}
    return [
        (n, v)
        for n, v in fields
        if (key := name_key(n)) not in HOP_BY_HOP and key not in named and not any(c in v for c in b"\r\n\0")
    ]


def reference_without_connection_named(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = {name_key(t.strip()) for n, v in fields if name_key(n) == b"connection" for t in v.split(b",")}
    named = (named | {b"connection"}) - FRAMING_NAMES
    return [(n, v) for n, v in fields if name_key(n) not in named]


def test_the_filters_keep_what_they_kept_for_20000_random_heads() -> None:
    rng = random.Random(6)
    for _ in range(20_000):
        fields = [(rng.choice(NAMES), rng.choice(VALUES)) for _ in range(rng.randrange(7))]
        assert without_hop_by_hop(fields) == reference_without_hop_by_hop(fields), fields
        assert without_connection_named(fields) == reference_without_connection_named(fields), fields
