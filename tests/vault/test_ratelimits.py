from __future__ import annotations

import pytest

from clavis_mcp.vault import Vault
from clavis_mcp.vault.limits.ratelimits import latest, rate_limit_headers, record


def test_nothing_recorded_reads_as_none(vault: Vault) -> None:
    assert latest(vault, "svc") is None


def test_latest_record_replaces_the_previous_one(vault: Vault) -> None:
    record(vault, "svc", {"x-ratelimit-remaining-requests": "9"}, 100.0)
    record(vault, "svc", {"x-ratelimit-remaining-requests": "8"}, 101.5)
    record(vault, "other", {"retry-after": "3"}, 102.0)
    assert latest(vault, "svc") == ({"x-ratelimit-remaining-requests": "8"}, 101.5)
    assert latest(vault, "other") == ({"retry-after": "3"}, 102.0)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("x-ratelimit-remaining-requests", True),
        ("X-RateLimit-Reset", True),
        ("x-rate-limit-limit", True),
        ("anthropic-ratelimit-tokens-remaining", True),
        ("RateLimit", True),
        ("RateLimit-Policy", True),
        ("ratelimit-remaining", True),
        ("Retry-After", True),
        ("Content-Type", False),
        ("x-ratelimited-by", False),
        ("Set-Cookie", False),
    ],
    ids=lambda v: str(v),
)
def test_rate_limit_header_selection(name: str, kept: bool) -> None:
    assert bool(rate_limit_headers([(name, "1")])) is kept


def test_selection_is_bounded_in_count_and_size() -> None:
    headers = [(f"x-ratelimit-h{i}", "v" * 1000) for i in range(100)]
    found = rate_limit_headers(headers)
    assert len(found) == 32 and all(len(v) == 256 for v in found.values())
