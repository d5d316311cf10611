"""Re-attack of SECURITY-CASES 6 (review F8): IPv6 addresses that carry an IPv4 address.

A NAT64 gateway (``64:ff9b::/96``) turns ``64:ff9b::a00:1`` into ``10.0.0.1``; a host with an
IPv4-compatible (``::a.b.c.d``) or IPv4-translated (``::ffff:0:a.b.c.d``) route reaches the
IPv4 address itself; 6to4 (``2002::/16``), Teredo (``2001::/32``) and local-use NAT64
(``64:ff9b:1::/48``) relay to an IPv4 address through gateways. The embedded address is judged
where its place is fixed; the relayed ranges are never public.
"""

from __future__ import annotations

import pytest

from clavis_mcp.vault import is_public_address

ADDRESSES = [
    ("nat64-loopback", "64:ff9b::7f00:1", False),
    ("nat64-rfc1918", "64:ff9b::a00:1", False),
    ("nat64-metadata", "64:ff9b::a9fe:a9fe", False),
    ("nat64-cgnat", "64:ff9b::6440:1", False),
    ("nat64-public", "64:ff9b::808:808", True),
    ("ipv4-compatible-loopback", "::7f00:1", False),
    ("ipv4-compatible-rfc1918", "::c0a8:101", False),
    ("ipv4-compatible-metadata", "::a9fe:a9fe", False),
    ("ipv4-translated-loopback", "::ffff:0:7f00:1", False),
    ("ipv4-translated-rfc1918", "::ffff:0:a00:1", False),
    ("local-use-nat64", "64:ff9b:1::a00:1", False),
    ("6to4-rfc1918", "2002:a00:1::1", False),
    ("6to4-loopback", "2002:7f00:1::1", False),
    ("teredo-rfc1918-client", "2001:0:4136:e378:8000:63bf:f5ff:fffe", False),
    ("ipv4-mapped-loopback", "::ffff:127.0.0.1", False),
    ("unspecified", "::", False),
    ("loopback", "::1", False),
    ("global-unicast", "2606:4700:4700::1111", True),
    ("public-ipv4", "8.8.8.8", True),
]


@pytest.mark.parametrize(("address", "public"), [c[1:] for c in ADDRESSES], ids=[c[0] for c in ADDRESSES])
def test_an_ipv6_address_embedding_a_private_ipv4_address_is_not_public(address: str, public: bool) -> None:
    assert is_public_address(address) is public
