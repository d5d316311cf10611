"""Each provider's rate-limit headers, as its public documentation shows them, in one shape."""

from __future__ import annotations

import pytest

from clavis_mcp.vault.limits.ratelimit_parse import (
    RateLimit,
    parse_all,
    parse_duration,
    parse_rate_limits,
    parse_rfc3339,
)

NOW = 1_700_000_000.0

# Each row: the headers one provider documents, and the limit the model should be told about.
PROVIDERS = [
    pytest.param(
        # https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        RateLimit(59, 60, NOW + 1, "x-ratelimit-remaining-requests", "requests"),
        id="openai-the-smaller-share-left-wins",
    ),
    pytest.param(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20ms",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        RateLimit(0, 60, NOW + 0.02, "x-ratelimit-remaining-requests", "requests"),
        id="openai-requests-exhausted",
    ),
    pytest.param(
        # https://docs.anthropic.com/en/api/rate-limits#response-headers
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "10000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:14:20Z",
        },
        RateLimit(10000, 40000, NOW + 60, "anthropic-ratelimit-tokens-remaining", "tokens"),
        id="anthropic-rfc3339-reset",
    ),
    pytest.param(
        {
            "anthropic-ratelimit-input-tokens-limit": "20000",
            "anthropic-ratelimit-input-tokens-remaining": "100",
            "anthropic-ratelimit-input-tokens-reset": "2023-11-14T23:13:20+01:00",
        },
        RateLimit(100, 20000, NOW, "anthropic-ratelimit-input-tokens-remaining", "input-tokens"),
        id="anthropic-input-tokens-with-offset",
    ),
    pytest.param(
        # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#checking-the-status-of-your-rate-limit
        {
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "56",
            "x-ratelimit-used": "4",
            "x-ratelimit-reset": "1372700873",
            "x-ratelimit-resource": "core",
        },
        RateLimit(56, 60, 1372700873.0, "x-ratelimit-remaining", "core"),
        id="github-epoch-reset",
    ),
    pytest.param(
        # https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/ (draft 08 and later)
        {"RateLimit-Policy": '"burst";q=100;w=60,"daily";q=1000;w=86400', "RateLimit": '"burst";r=50;t=30'},
        RateLimit(50, 100, NOW + 30, "ratelimit", "burst"),
        id="ietf-structured-list-with-policy",
    ),
    pytest.param(
        {"RateLimit": '"default";r=50;t=30'},
        RateLimit(50, None, NOW + 30, "ratelimit", "default"),
        id="ietf-structured-list-without-policy",
    ),
    pytest.param(
        # draft-ietf-httpapi-ratelimit-headers-07, section 5: one dictionary field
        {"RateLimit": "limit=100, remaining=50, reset=50"},
        RateLimit(50, 100, NOW + 50, "ratelimit"),
        id="ietf-draft-07-dictionary",
    ),
    pytest.param(
        # draft-ietf-httpapi-ratelimit-headers-03: three fields, the limit may carry a policy
        {"RateLimit-Limit": "10, 10;w=1", "RateLimit-Remaining": "3", "RateLimit-Reset": "7"},
        RateLimit(3, 10, NOW + 7, "ratelimit-remaining"),
        id="ietf-draft-03-separate-fields",
    ),
    pytest.param(
        # https://www.rfc-editor.org/rfc/rfc9110#name-retry-after
        {"Retry-After": "120"},
        RateLimit(0, None, NOW + 120, "retry-after"),
        id="retry-after-seconds",
    ),
    pytest.param(
        {"Retry-After": "Fri, 31 Dec 1999 23:59:59 GMT"},
        RateLimit(0, None, 946684799.0, "retry-after"),
        id="retry-after-http-date",
    ),
    pytest.param(
        {"x-ratelimit-remaining-requests": "5", "x-ratelimit-limit-requests": "60", "Retry-After": "3"},
        RateLimit(0, None, NOW + 3, "retry-after"),
        id="retry-after-wins-over-remaining",
    ),
]


@pytest.mark.parametrize(("headers", "expected"), PROVIDERS)
def test_provider_headers_become_one_shape(headers: dict[str, str], expected: RateLimit) -> None:
    got = parse_rate_limits(headers, NOW)
    assert got is not None
    assert (got.remaining, got.limit, got.source, got.scope) == (
        expected.remaining,
        expected.limit,
        expected.source,
        expected.scope,
    )
    assert got.reset_at == pytest.approx(expected.reset_at, abs=1e-3)


def test_header_names_are_case_insensitive_and_pairs_are_accepted() -> None:
    pairs = [("X-RateLimit-Remaining", "7"), ("X-RateLimit-Limit", "10"), ("X-RateLimit-Reset", "1700000100")]
    assert parse_rate_limits(pairs, NOW) == RateLimit(7, 10, 1700000100.0, "x-ratelimit-remaining", "requests")


def test_every_limit_is_listed_by_parse_all() -> None:
    headers = dict(PROVIDERS[0].values[0])  # type: ignore[arg-type]
    assert [r.scope for r in parse_all(headers, NOW)] == ["requests", "tokens"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json"},
        {"x-ratelimit-remaining": "many"},
        {"x-ratelimit-remaining-requests": "-1"},
        {"RateLimit": '"default";r=;t=30'},
        {"RateLimit": "remaining=lots"},
        {"Retry-After": "soon"},
        {"Retry-After": "Fri, 31 Dec 1999 23:59:59"},
        {"RateLimit": "limité=1"},
    ],
    ids=[
        "none",
        "unrelated",
        "github-non-numeric",
        "openai-negative",
        "ietf-broken-list",
        "ietf-non-numeric",
        "retry-after-words",
        "retry-after-date-without-zone",
        "non-ascii",
    ],
)
def test_absent_or_malformed_headers_give_no_limit(headers: dict[str, str]) -> None:
    assert parse_rate_limits(headers, NOW) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1s", 1.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0s", 0.0), ("500us", 0.0005),
     ("", None), ("6 minutes", None), ("1x", None), ("s", None)],
    ids=["minutes", "second", "millis", "mixed", "zero", "micros", "empty", "words", "bad-unit", "no-number"],
)  # fmt: skip
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "epoch"),
    [("2023-11-14T22:13:20Z", NOW), ("2023-11-14T22:13:20.5+00:00", NOW + 0.5), ("2023-11-14T22:13:20", None),
     ("yesterday", None)],
    ids=["zulu", "fraction-offset", "no-zone", "words"],
)  # fmt: skip
def test_rfc3339_times(text: str, epoch: float | None) -> None:
    assert parse_rfc3339(text) == epoch


DAY = 86400
GH, OA, AN = (
    {"x-ratelimit-remaining": "59"},
    {"x-ratelimit-remaining-requests": "59"},
    {"anthropic-ratelimit-requests-remaining": "59"},
)
# Each row: one reset form, and the resets parse_all believes. A reset not finite, before the
# epoch or more than about a year after observation is dropped (the remaining figure stays);
# a Retry-After, which carries nothing else, is then dropped whole.
RESET_BOUNDS = [
    ("github-epoch-within-a-year", {**GH, "x-ratelimit-reset": str(int(NOW) + 365 * DAY)}, [NOW + 365 * DAY]),
    ("github-epoch-far-future", {**GH, "x-ratelimit-reset": "99999999999999"}, [None]),
    ("github-epoch-in-milliseconds", {**GH, "x-ratelimit-reset": str(int(NOW) * 1000)}, [None]),
    ("github-beyond-int-conversion", {**GH, "x-ratelimit-reset": "9" * 5000}, [None]),
    ("github-superscript-digit", {**GH, "x-ratelimit-reset": "1²"}, [None]),
    ("openai-duration-within-a-year", {**OA, "x-ratelimit-reset-requests": "8760h"}, [NOW + 365 * DAY]),
    ("openai-duration-two-years", {**OA, "x-ratelimit-reset-requests": "17520h"}, [None]),
    ("openai-duration-infinite", {**OA, "x-ratelimit-reset-requests": "9" * 400 + "h"}, [None]),
    ("anthropic-year-9999", {**AN, "anthropic-ratelimit-requests-reset": "9999-12-31T23:59:59Z"}, [None]),
    ("anthropic-before-the-epoch", {**AN, "anthropic-ratelimit-requests-reset": "1969-12-31T00:00:00Z"}, [None]),
    ("ietf-list-negative", {"ratelimit": '"default";r=5;t=-30'}, [None]),
    ("ietf-list-far", {"ratelimit": '"default";r=5;t=999999999999999'}, [None]),
    ("ietf-dictionary-far", {"ratelimit": "limit=100, remaining=50, reset=999999999999"}, [None]),
    ("ietf-separate-far", {"ratelimit-remaining": "5", "ratelimit-reset": "99999999999999"}, [None]),
    ("retry-after-seconds-within", {"retry-after": "3600"}, [NOW + 3600]),
    ("retry-after-seconds-far", {"retry-after": "99999999999999"}, []),
    ("retry-after-date-far", {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, []),
    ("retry-after-superscript-digit", {"retry-after": "3²"}, []),
]


@pytest.mark.parametrize(("headers", "resets"), [r[1:] for r in RESET_BOUNDS], ids=[r[0] for r in RESET_BOUNDS])
def test_a_reset_beyond_a_year_or_out_of_range_is_not_believed(
    headers: dict[str, str], resets: list[float | None]
) -> None:
    assert [r.reset_at for r in parse_all(headers, NOW)] == resets
