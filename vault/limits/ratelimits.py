"""The provider's rate-limit headers, as last seen on a response for each service.

The proxy records them raw, with the time they were observed, because their meaning depends
on that time (``Retry-After: 30``, ``x-ratelimit-reset-requests: 2s``). Parsing them into
remaining/limit/reset is left to the readers, which know each provider's dialect.

One record per service (kind ``rate_limits``, not bound to the service: a response may be
recorded while its service is being removed), written ``quiet`` so that recording what a
response said never makes every process reload the vault.
"""

from __future__ import annotations

import json
import logging
import re

from ..errors import VaultBusy
from ..storage.protocol import Value
from ..store import Vault

log = logging.getLogger(__name__)
KIND = "rate_limits"  # {"headers": JSON text, "observed_at": float}

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


def record(vault: Vault, service: str, headers: dict[str, str], observed_at: float) -> None:
    """Replace what is known of ``service``'s limits with ``headers``, seen at ``observed_at``."""
    fields: dict[str, Value] = {"headers": json.dumps(headers, sort_keys=True), "observed_at": observed_at}
    try:
        with vault.store.atomic() as batch:
            batch.put(KIND, service, fields, quiet=True)
    except VaultBusy:  # advisory, and the next response says it again: never fail a request for it
        log.warning("rate limits of %r not recorded: the vault stayed locked by another writer", service)


def latest(vault: Vault, service: str) -> tuple[dict[str, str], float] | None:
    """The last recorded headers of ``service`` and when they were seen, or None."""
    with vault.store.read() as batch:
        found = batch.get(KIND, service)
    if found is None:
        return None
    return json.loads(str(found.fields["headers"])), float(found.fields["observed_at"] or 0)
