"""The fast path of ``parse_host_rule`` for texts already in canonical form (stored definitions,
issue 18.4) must give exactly what the full check gives, and refuse exactly what it refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clavis_mcp.vault.hosts import HostRule, _canonical_name_rule, _parse_host_rule_checked, parse_host_rule


def _outcome(parse: object, text: str) -> HostRule | str:
    try:
        return parse(text)  # type: ignore[operator,no-any-return]
    except ValueError:
        return "refused"


EDGES = [
    "api.openai.com",
    "api.openai.com:443",
    "api.openai.com:0443",
    "a.b:65535",
    "a.b:65536",
    "a.b:0",
    "a.b:99999",
    "localhost",
    "x" * 63 + ".com",
    "x" * 64 + ".com",
    "-a.com",
    "a-.com",
    "a--b.com",
    "xn--bcher-kva.example",
    "1.2.3.4",
    "127.1",
    "2130706433",
    "x.0x10",
    "x.0xg1",
    "a.123",
    "a..b",
    ".a.b",
    "a.b.",
    "API.openai.com",
    " a.b",
    "a.b\n",
    "*.example.com",
    "*.co.uk",
    "*.com",
    "[::1]:9000",
    "::1",
]


@pytest.mark.parametrize("text", EDGES, ids=[repr(t) for t in EDGES])
def test_fast_path_agrees_with_full_check(text: str) -> None:
    assert _outcome(parse_host_rule, text) == _outcome(_parse_host_rule_checked, text)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abz09-.:*[]AX\n", max_size=24))
def test_fast_path_agrees_with_full_check_on_any_text(text: str) -> None:
    assert _outcome(parse_host_rule, text) == _outcome(_parse_host_rule_checked, text)


def test_stored_spelling_takes_the_fast_path() -> None:
    """``str(rule)`` of an exact name rule is what a definition stores; it must not need IDNA."""
    for rule in (HostRule("api.openai.com"), HostRule("s9.scale.example", 8443)):
        assert _canonical_name_rule(str(rule)) == rule
    assert _canonical_name_rule("API.openai.com") is None
    assert _canonical_name_rule("*.example.com") is None
    assert _canonical_name_rule("10.0.0.1") is None
