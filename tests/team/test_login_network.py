"""What a login client is limited as: an IPv4 address, an IPv6 /64, a mapped IPv4 as itself."""

from __future__ import annotations

from clavis_mcp.team.identity import client_network


def test_ipv4_is_one_address_and_ipv6_is_its_64() -> None:
    assert client_network("203.0.113.7") == "203.0.113.7"
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_network("") == "unknown"
