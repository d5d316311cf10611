"""The provider's rate-limit headers, as last seen on a response for each service.

The proxy records them raw, with the time they were observed, because their meaning depends
on that time (``Retry-After: 30``, ``x-ratelimit-reset-requests: 2s``). Parsing them into
remaining/limit/reset is left to the readers, which know each provider's dialect.
"""

from __future__ import annotations

import json
import re

from ..store import Vault

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_limits (
    service TEXT PRIMARY KEY,
    headers TEXT NOT NULL,
    observed_at REAL NOT NULL
)
"""

# x-ratelimit-* (OpenAI, GitHub, many), anthropic-ratelimit-*, ratelimit-* drafts, and the
# IETF RateLimit / RateLimit-Policy fields, plus Retry-After.
RATE_LIMIT_HEADER = re.compile(r"^(x-ratelimit-.+|x-rate-limit-.+|anthropic-ratelimit-.+|ratelimit(-.+)?|retry-after)$")
MAX_HEADERS = 32
MAX_VALUE = 256


def rate_limit_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """The rate-limit headers among ``headers``, names lower-cased, bounded in count and size."""
    found: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if RATE_LIMIT_HEADER.match(key) and len(found) < MAX_HEADERS:
            found[key] = value[:MAX_VALUE]
    return found


def _ensure_table(vault: Vault) -> None:
    vault.ensure_table("rate_limits", _SCHEMA)


def record(vault: Vault, service: str, headers: dict[str, str], observed_at: float) -> None:
    """Replace what is known of ``service``'s limits with ``headers``, seen at ``observed_at``."""
    _ensure_table(vault)
    with vault.transaction() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO rate_limits (service, headers, observed_at) VALUES (?, ?, ?)",
            (service, json.dumps(headers, sort_keys=True), observed_at),
        )


def latest(vault: Vault, service: str) -> tuple[dict[str, str], float] | None:
    """The last recorded headers of ``service`` and when they were seen, or None."""
    _ensure_table(vault)
    rows = vault.query("SELECT headers, observed_at FROM rate_limits WHERE service = ?", (service,))
    if not rows:
        return None
    headers, observed_at = rows[0]
    return json.loads(headers), float(observed_at)
