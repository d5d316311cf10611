"""RecordRateLimits keeps every rate-limit header, in any case, and writes nothing without one."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from clavis_mcp.addons.flowmeta import DECISION, SERVICE
from clavis_mcp.addons.ratelimits import RecordRateLimits
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.limits.ratelimits import latest
from tests.conftest import SECRET, make_service


def answered(fields: list[tuple[bytes, bytes]]) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.response.headers = http.Headers(fields)  # type: ignore[union-attr]
    flow.metadata[SERVICE], flow.metadata[DECISION] = "api", "injected"
    return flow


@pytest.mark.parametrize(
    ("name", "value"),
    [(b"X-RateLimit-Remaining", b"41"), (b"ANTHROPIC-RATELIMIT-REQUESTS-LIMIT", b"50"), (b"Retry-After", b"30"),
     (b"RateLimit", b"limit=10"), (b"x-rate-limit-reset", b"2s")],
    ids=["x-ratelimit", "upper-case", "retry-after", "ietf", "x-rate-limit"],
)  # fmt: skip
def test_a_rate_limit_header_in_any_case_is_recorded(vault: Vault, name: bytes, value: bytes) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    RecordRateLimits(vault).response(answered([(b"Content-Type", b"application/json"), (name, value)]))
    found = latest(vault, "api")
    assert found is not None and found[0] == {name.decode().lower(): value.decode()}


def test_a_response_without_one_writes_nothing(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    RecordRateLimits(vault).response(answered([(b"Content-Type", b"application/json"), (b"X-Rate", b"1")]))
    assert latest(vault, "api") is None
