"""RecordRateLimits keeps every rate-limit header, in any case, and writes nothing without one."""

from __future__ import annotations

import anyio
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


def limited(remaining: int, status: int = 200, *extra: tuple[bytes, bytes]) -> http.HTTPFlow:
    flow = answered([(b"X-RateLimit-Remaining", str(remaining).encode()), *extra])
    flow.response.status_code = status  # type: ignore[union-attr]
    return flow


def remaining(vault: Vault) -> str | None:
    found = latest(vault, "api")
    return found[0].get("x-ratelimit-remaining") if found else None


@pytest.mark.anyio
async def test_a_burst_writes_the_first_figures_at_once_and_the_latest_when_the_proxy_stops(vault: Vault) -> None:
    """What OpenAI sends on every response is one vault write a second, not one per response."""
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RecordRateLimits(vault)
    for left in (41, 40, 39):
        addon.response(limited(left))
    assert remaining(vault) == "41"  # the rest wait for the interval
    addon.done()
    assert remaining(vault) == "39"


@pytest.mark.anyio
async def test_the_latest_figures_of_a_burst_are_written_when_the_interval_is_up(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("clavis_mcp.addons.ratelimits.EVERY", 0.05)
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RecordRateLimits(vault)
    addon.response(limited(41))
    addon.response(limited(40))
    with anyio.fail_after(5):
        while remaining(vault) != "40":
            await anyio.sleep(0.01)
    addon.done()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "extra"), [(429, ()), (503, ()), (200, ((b"Retry-After", b"30"),))], ids=["429", "503", "retry-after"]
)
async def test_a_refusal_that_says_when_to_come_back_is_written_at_once(
    vault: Vault, status: int, extra: tuple[tuple[bytes, bytes], ...]
) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    addon = RecordRateLimits(vault)
    addon.response(limited(1))
    addon.response(limited(0, status, *extra))
    assert remaining(vault) == "0"
    addon.done()
