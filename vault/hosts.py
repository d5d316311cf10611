"""Host rules: which destinations a service's credential may be sent to.

Pure functions only, so they can be table-tested exhaustively. Every host that is matched,
injected for or dialled goes through :func:`canonical_host` first: one spelling
(lower case, IDNA, no trailing dot) means one decision.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*")
_CANONICAL_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# ``str(HostRule)`` of an exact domain rule: what a stored definition holds (issue 18.4).
_CANONICAL_NAME_RULE = re.compile(rf"((?:{_CANONICAL_LABEL}\.)*{_CANONICAL_LABEL})(?::([1-9][0-9]{{0,4}}))?")


@functools.lru_cache(maxsize=4096)
def canonical_host(host: str) -> str:
    """Return the one spelling of ``host`` used for every decision, or raise ValueError.

    Cached: the proxy asks several times per request for the same few hosts, and the IDNA and
    ``ipaddress`` parses cost more than the rest of the destination check (bench/notes.md).
    A host that raises is not cached."""
    if not host:
        raise ValueError("empty host")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    if host.endswith("."):
        host = host[:-1]
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"host {host!r} is not a valid domain name") from exc
    labels = ascii_host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"host {host!r} is not a valid domain name")
    if _looks_numeric(labels[-1]):
        raise ValueError(f"host {host!r} is a numeric address in a non-standard spelling")
    return ascii_host


def _looks_numeric(label: str) -> bool:
    """`0x7f`, `2130706433`: spellings that resolvers turn into IPv4 addresses."""
    return label.isdigit() or bool(_HEX_NUMBER.fullmatch(label))


@dataclass(frozen=True, slots=True)
class HostRule:
    """An exact ``host[:port]`` or a ``*.domain`` wildcard (subdomains only, never the bare domain)."""

    host: str
    port: int | None = None
    wildcard: bool = False

    def __str__(self) -> str:
        host = f"*.{self.host}" if self.wildcard else self.host
        if ":" in host:
            host = f"[{host}]"
        return host if self.port is None else f"{host}:{self.port}"

    def matches(self, host: str, port: int, default_port: int = 443) -> bool:
        """``host`` must already be canonical."""
        if port != (self.port if self.port is not None else default_port):
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def parse_host_rule(text: str) -> HostRule:
    """Parse ``host``, ``host:port``, ``[v6]:port`` or ``*.domain[:port]``; raise ValueError.

    A text already in the canonical spelling of an exact domain rule (every stored definition's,
    mostly) takes a fast path that gives the same rule as the full check (IDNA, ``ipaddress``)
    at a tenth of its cost; any other text, wildcards included, takes the full check."""
    return _canonical_name_rule(text) or _parse_host_rule_checked(text)


def _canonical_name_rule(text: str) -> HostRule | None:
    """The rule for ``name[:port]`` when ``text`` is exactly canonical, else None.

    The pattern is what :func:`canonical_host` leaves unchanged for an ASCII name: labels of
    1..63 of ``[a-z0-9-]`` with no hyphen at either end, no trailing dot; a numeric last label
    (an IPv4 spelling) and ports above 65535 go to the full check."""
    match = _CANONICAL_NAME_RULE.fullmatch(text)
    if match is None:
        return None
    host, port_text = match.groups()
    if _looks_numeric(host.rpartition(".")[2]):
        return None
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        return None
    return HostRule(host=host, port=port)


def _parse_host_rule_checked(text: str) -> HostRule:
    """The full parse of any host rule text."""
    raw = text.strip()
    if not raw:
        raise ValueError("empty host rule")
    if any(c in raw for c in "/@?#\\ \t\r\n") or "://" in raw:
        raise ValueError(f"host rule {text!r} must be host[:port] only (no scheme, path or userinfo)")
    port: int | None = None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ValueError(f"host rule {text!r} has an unclosed '['")
        host_part, rest = raw[1:end], raw[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"host rule {text!r} is malformed")
            port = _parse_port(rest[1:], text)
    elif raw.count(":") == 1:
        host_part, port_text = raw.split(":")
        port = _parse_port(port_text, text)
    elif raw.count(":") > 1:
        host_part = raw  # bare IPv6 literal without port
    else:
        host_part = raw
    wildcard = host_part.startswith("*.")
    if wildcard:
        host_part = host_part[2:]
    if "*" in host_part:
        raise ValueError(f"host rule {text!r}: only a leading '*.' wildcard is allowed")
    host = canonical_host(host_part)
    if wildcard and (_is_ip(host) or _public_suffixes().is_public(host)):
        raise ValueError(
            f"host rule {text!r}: {host} is a public suffix shared by unrelated owners; "
            "a wildcard must sit under a registrable domain, e.g. *.example.com"
        )
    return HostRule(host=host, port=port, wildcard=wildcard)


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List bundled with the package (no network), parsed on first use (~70 ms).

    A wildcard over a public suffix (`*.co.uk`, `*.github.io`) would hand a credential to every
    customer of that suffix.
    """
    return PublicSuffixList()


def _parse_port(text: str, rule: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"host rule {rule!r} has an invalid port {text!r}")
    return int(text)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# IPv6 ranges whose last 32 bits are an IPv4 address that a gateway or the host itself reaches:
# NAT64's well-known prefix (RFC 6052), IPv4-compatible (RFC 4291) and IPv4-translated
# (RFC 2765, ``::ffff:0:a.b.c.d``).
_EMBEDDING_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
# Relayed to an IPv4 address through a gateway, at places that vary: local-use NAT64 (RFC 8215),
# 6to4 (RFC 3056) and Teredo (RFC 4380). Never public, whatever Python's tables say.
_RELAYED_TO_IPV4 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b:1::/48", "2002::/16", "2001::/32"))


@functools.lru_cache(maxsize=4096)
def is_public_address(host: str) -> bool:
    """True for a global unicast IP; False for loopback, private, link-local, CGNAT, metadata, ...
    and for an IPv6 address that carries one of those as an IPv4 address (judged as that address).

    Cached like :func:`canonical_host`: a name makes ``ipaddress`` raise, which is slow, and the
    proxy asks for every request."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name; its resolved address is checked at dial time
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif any(address in network for network in _RELAYED_TO_IPV4):
            return False
        elif any(address in network for network in _EMBEDDING_IPV4):
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_global and not address.is_multicast


def rules_overlap(a: HostRule, b: HostRule) -> bool:
    """Whether some destination would match both rules (the same port and a shared host)."""
    if (a.port or 443) != (b.port or 443):
        return False
    if a.wildcard and b.wildcard:
        return a.host == b.host or a.host.endswith("." + b.host) or b.host.endswith("." + a.host)
    if a.wildcard:
        return b.host.endswith("." + a.host)
    if b.wildcard:
        return a.host.endswith("." + b.host)
    return a.host == b.host
