from __future__ import annotations

import pytest

from clavis_mcp.vault.hosts import HostRule, canonical_host, is_public_address, parse_host_rule, rules_overlap

CANONICAL = [
    ("API.OpenAI.com", "api.openai.com"),
    ("api.openai.com.", "api.openai.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("::FFFF:127.0.0.1", "::ffff:127.0.0.1"),
]


@pytest.mark.parametrize(("raw", "canonical"), CANONICAL, ids=[c[0] for c in CANONICAL])
def test_canonical_host_has_one_spelling(raw: str, canonical: str) -> None:
    assert canonical_host(raw) == canonical


BAD_HOSTS = ["", "127.1", "0x7f.0.0.1", "2130706433", "a..b", "-a.com", "a b.com", "evil.com%2f", "x.0x10"]


@pytest.mark.parametrize("raw", BAD_HOSTS, ids=[repr(h) for h in BAD_HOSTS])
def test_canonical_host_refuses_odd_spellings(raw: str) -> None:
    with pytest.raises(ValueError):
        canonical_host(raw)


RULES = [
    ("api.openai.com", HostRule("api.openai.com")),
    ("API.openai.com:8443", HostRule("api.openai.com", 8443)),
    ("*.slack.com", HostRule("slack.com", None, True)),
    ("[::1]:9000", HostRule("::1", 9000)),
    ("127.0.0.1:4443", HostRule("127.0.0.1", 4443)),
]


@pytest.mark.parametrize(("text", "rule"), RULES, ids=[r[0] for r in RULES])
def test_parse_host_rule(text: str, rule: HostRule) -> None:
    assert parse_host_rule(text) == rule
    assert parse_host_rule(str(rule)) == rule


BAD_RULES = [
    "https://api.openai.com", "api.openai.com/v1", "user@api.openai.com", "*", "*.com",
    "a.*.com", "api.openai.com:0", "api.openai.com:99999", "api.openai.com:x", "[::1", "",
]  # fmt: skip


@pytest.mark.parametrize("text", BAD_RULES, ids=[repr(r) for r in BAD_RULES])
def test_parse_host_rule_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_rule(text)


MATCHES = [
    ("api.openai.com", "api.openai.com", 443, True),
    ("api.openai.com", "api.openai.com", 8443, False),
    ("api.openai.com", "evilapi.openai.com", 443, False),
    ("api.openai.com", "api.openai.com.evil.test", 443, False),
    ("*.slack.com", "hooks.slack.com", 443, True),
    ("*.slack.com", "slack.com", 443, False),
    ("*.slack.com", "evilslack.com", 443, False),
    ("127.0.0.1:4443", "127.0.0.1", 4443, True),
    ("127.0.0.1:4443", "127.0.0.1", 443, False),
]


@pytest.mark.parametrize(("rule", "host", "port", "expected"), MATCHES, ids=[f"{m[0]}~{m[1]}:{m[2]}" for m in MATCHES])
def test_rule_matching_is_exact(rule: str, host: str, port: int, expected: bool) -> None:
    assert parse_host_rule(rule).matches(host, port) is expected


OVERLAPS = [
    ("api.x.com", "api.x.com", True),
    ("*.x.com", "api.x.com", True),
    ("*.x.com", "*.api.x.com", True),
    ("api.x.com", "api.x.com:8443", False),
    ("*.x.com", "x.com", False),
    ("a.x.com", "b.x.com", False),
]


@pytest.mark.parametrize(("a", "b", "expected"), OVERLAPS, ids=[f"{o[0]}|{o[1]}" for o in OVERLAPS])
def test_rules_overlap(a: str, b: str, expected: bool) -> None:
    assert rules_overlap(parse_host_rule(a), parse_host_rule(b)) is expected
    assert rules_overlap(parse_host_rule(b), parse_host_rule(a)) is expected


ADDRESSES = [
    ("8.8.8.8", True), ("api.openai.com", True), ("127.0.0.1", False), ("::1", False),
    ("::ffff:127.0.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False), ("0.0.0.0", False),
    ("fd00::1", False), ("fe80::1", False), ("224.0.0.1", False),
]  # fmt: skip


@pytest.mark.parametrize(("host", "public"), ADDRESSES, ids=[a[0] for a in ADDRESSES])
def test_private_addresses_are_not_public(host: str, public: bool) -> None:
    assert is_public_address(host) is public


PUBLIC_SUFFIX_WILDCARDS = ["*.com", "*.co.uk", "*.github.io", "*.compute.amazonaws.com", "*.test", "*.xn--p1ai"]


@pytest.mark.parametrize("text", PUBLIC_SUFFIX_WILDCARDS, ids=PUBLIC_SUFFIX_WILDCARDS)
def test_wildcards_over_a_public_suffix_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="public suffix"):
        parse_host_rule(text)


REGISTRABLE_WILDCARDS = [
    ("*.example.com", "example.com"),
    ("*.example.co.uk", "example.co.uk"),
    ("*.api.github.com", "api.github.com"),
    ("*.Bücher.example", "xn--bcher-kva.example"),
]


@pytest.mark.parametrize(("text", "host"), REGISTRABLE_WILDCARDS, ids=[w[0] for w in REGISTRABLE_WILDCARDS])
def test_wildcards_under_a_registrable_domain_are_accepted_and_normalised(text: str, host: str) -> None:
    assert parse_host_rule(text) == HostRule(host, None, True)
