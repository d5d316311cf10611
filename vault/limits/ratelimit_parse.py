"""Provider rate-limit headers, normalised into one shape.

Every provider spells its limits differently (OpenAI: Go durations; Anthropic: RFC 3339
times; GitHub: epoch seconds; the IETF draft: structured fields; ``Retry-After``: seconds
or an HTTP date). The model only needs one answer: how many calls are left, out of how
many, and when that resets. Pure functions of (headers, time observed), so each format is
table-tested against the provider's documented examples.

A reset is only believed when it lies between the epoch and about a year after the headers
were seen (:data:`HORIZON`): the longest windows providers document are monthly quotas, so
anything later is noise or hostile, and a far value (``x-ratelimit-reset: 99999999999999``)
would otherwise reach every page and tool that formats it as a date beyond ``datetime``'s
range. Such a reset is dropped like an unreadable one: the remaining figure still counts, and a
``Retry-After`` (which says nothing else) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|h|m|s)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SCOPES = ("requests", "tokens", "input-tokens", "output-tokens")
HORIZON = 366 * 86400.0  # seconds after observation beyond which a reset is not believed

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One limit: ``remaining`` of ``limit`` calls (or tokens) until ``reset_at`` (epoch seconds)."""

    remaining: int | None
    limit: int | None
    reset_at: float | None
    source: str  # the header the remaining figure (or the wait) was read from
    scope: str = "requests"


def parse_rate_limits(headers: Headers, observed_at: float) -> RateLimit | None:
    """The most constraining limit the headers announce, or None when they announce none."""
    limits = parse_all(headers, observed_at)
    if not limits:
        return None
    return min(limits, key=lambda r: (_headroom(r), -(r.reset_at or 0.0)))


def parse_all(headers: Headers, observed_at: float) -> list[RateLimit]:
    """Every limit found, from every format present; unparseable values are ignored, not guessed."""
    lower = _lower(headers)
    limits: list[RateLimit] = []
    limits += _openai(lower, observed_at)
    limits += _anthropic(lower, observed_at)
    limits += _github(lower, observed_at)
    limits += _ietf(lower, observed_at)
    retry = _retry_after(lower, observed_at)
    if retry is not None:
        limits.append(retry)
    return limits


# -- individual formats ------------------------------------------------------------------------


def _openai(h: dict[str, str], now: float) -> list[RateLimit]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, reset as a Go duration."""
    found = []
    for scope in ("requests", "tokens"):
        remaining = _int(h.get(f"x-ratelimit-remaining-{scope}"))
        if remaining is None:
            continue
        delay = parse_duration(h.get(f"x-ratelimit-reset-{scope}", ""))
        found.append(
            RateLimit(
                remaining=remaining,
                limit=_int(h.get(f"x-ratelimit-limit-{scope}")),
                reset_at=_reset_in(delay, now),
                source=f"x-ratelimit-remaining-{scope}",
                scope=scope,
            )
        )
    return found


def _anthropic(h: dict[str, str], now: float) -> list[RateLimit]:
    """``anthropic-ratelimit-{scope}-{limit,remaining,reset}``, reset as an RFC 3339 time."""
    found = []
    for scope in _SCOPES:
        prefix = f"anthropic-ratelimit-{scope}-"
        remaining = _int(h.get(prefix + "remaining"))
        if remaining is None:
            continue
        found.append(
            RateLimit(
                remaining=remaining,
                limit=_int(h.get(prefix + "limit")),
                reset_at=_reset_at(parse_rfc3339(h.get(prefix + "reset", "")), now),
                source=prefix + "remaining",
                scope=scope,
            )
        )
    return found


def _github(h: dict[str, str], now: float) -> list[RateLimit]:
    """``x-ratelimit-{limit,remaining,reset}``, reset in epoch seconds; the resource names the scope."""
    remaining = _int(h.get("x-ratelimit-remaining"))
    if remaining is None:
        return []
    return [
        RateLimit(
            remaining=remaining,
            limit=_int(h.get("x-ratelimit-limit")),
            reset_at=_reset_at(_int(h.get("x-ratelimit-reset")), now),
            source="x-ratelimit-remaining",
            scope=h.get("x-ratelimit-resource", "requests"),
        )
    ]


def _ietf(h: dict[str, str], now: float) -> list[RateLimit]:
    """The IETF draft in its three published shapes, newest first.

    draft-ietf-httpapi-ratelimit-headers-08+: ``RateLimit: "default";r=50;t=30`` with the
    quota in ``RateLimit-Policy: "default";q=100;w=60``; drafts 05-07: one dictionary
    ``RateLimit: limit=100, remaining=50, reset=50``; drafts up to 04 (and many servers):
    ``RateLimit-Limit``/``-Remaining``/``-Reset`` as separate integers.
    """
    found: list[RateLimit] = []
    value = h.get("ratelimit")
    if value is not None:
        found += _ietf_list(value, h.get("ratelimit-policy", ""), now) or _ietf_dictionary(value, now)
    remaining = _int(h.get("ratelimit-remaining"))
    if not found and remaining is not None:
        reset = _reset_in(_int(h.get("ratelimit-reset")), now)
        limit = _int((h.get("ratelimit-limit") or "").split(",")[0].split(";")[0])
        found.append(RateLimit(remaining, limit, reset, "ratelimit-remaining"))
    return found


def _ietf_list(value: str, policy: str, now: float) -> list[RateLimit]:
    items = _sf(value, "list")
    if not isinstance(items, list):
        return []
    quotas: dict[str, int] = {}
    policies = _sf(policy, "list") if policy else []
    for name, params in policies if isinstance(policies, list) else []:
        if isinstance(params, dict) and isinstance(params.get("q"), int):
            quotas[str(name)] = params["q"]
    found = []
    for name, params in items:
        if not isinstance(params, dict) or not isinstance(params.get("r"), int):
            continue
        reset = params.get("t")
        found.append(
            RateLimit(
                remaining=params["r"],
                limit=quotas.get(str(name)),
                reset_at=_reset_in(reset, now) if isinstance(reset, int) else None,
                source="ratelimit",
                scope=str(name),
            )
        )
    return found


def _ietf_dictionary(value: str, now: float) -> list[RateLimit]:
    members = _sf(value, "dictionary")
    if not isinstance(members, dict):
        return []
    figures = {key: item[0] if isinstance(item, tuple) else None for key, item in members.items()}
    remaining, limit, reset = figures.get("remaining"), figures.get("limit"), figures.get("reset")
    if not isinstance(remaining, int):
        return []
    return [
        RateLimit(
            remaining=remaining,
            limit=limit if isinstance(limit, int) else None,
            reset_at=_reset_in(reset, now) if isinstance(reset, int) else None,
            source="ratelimit",
        )
    ]


def _retry_after(h: dict[str, str], now: float) -> RateLimit | None:
    """RFC 9110 ``Retry-After``: nothing is left until the given delay or date."""
    value = h.get("retry-after", "").strip()
    if not value:
        return None
    if _digits(value):
        reset = _reset_in(int(value), now)
        return None if reset is None else RateLimit(0, None, reset, "retry-after")
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reset = _reset_at(when.timestamp(), now) if when.tzinfo is not None else None
    return None if reset is None else RateLimit(0, None, reset, "retry-after")


# -- value parsers -----------------------------------------------------------------------------


def parse_duration(text: str) -> float | None:
    """Go's ``time.Duration`` text (``6m0s``, ``1s``, ``20ms``, ``1h2m3.5s``) in seconds."""
    text = text.strip()
    if not text or _DURATION_PART.sub("", text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def parse_rfc3339(text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _reset_in(delay: float | None, now: float) -> float | None:
    """``now + delay`` if that is a believable reset (see the module docstring), else None."""
    if delay is None or not 0 <= delay <= HORIZON:  # also false for NaN; int/float compare exactly
        return None
    return now + delay


def _reset_at(when: float | None, now: float) -> float | None:
    """``when`` (epoch seconds) if it is a believable reset (see the module docstring), else None."""
    if when is None or not 0 <= when <= now + HORIZON:
        return None
    return float(when)


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if _digits(text) else None


def _digits(text: str) -> bool:
    """A count or time ``int()`` accepts: ``str.isdigit`` also passes ``²`` and 5,000 digits, which it refuses."""
    return len(text) <= 30 and text.isascii() and text.isdigit()


def _sf(value: str, kind: str) -> object:
    import http_sf  # ~2 ms to import: loaded with the first structured header, not at start-up

    try:
        return http_sf.parse(value.encode("ascii"), tltype=kind)
    except (ValueError, UnicodeEncodeError):
        return None


def _lower(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lower: dict[str, str] = {}
    for name, value in pairs:
        lower.setdefault(name.lower(), value)
    return lower


def _headroom(limit: RateLimit) -> float:
    if limit.remaining is None:
        return 1.0
    if limit.limit:
        return limit.remaining / limit.limit
    return 0.0 if limit.remaining == 0 else 1.0
