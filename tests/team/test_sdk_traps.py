"""The four shapes that crash the `clavis` 0.2.4 SDK, each driven through the real SDK: a non-JSON
error body, an HTTP-date Retry-After, a rate_limit_remaining key in the proxy JSON, and a body that
is not a string, object, array or null. And budgets shared by every replica."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import trustme
from clavis import ClavisClient, ClavisError, RateLimitError

from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET

from .conftest import TeamServer, add_echo, new_key
from .shapes_upstream import shapes_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
def shapes(upstream_ca: trustme.CA) -> Iterator[EchoUpstream]:
    with shapes_upstream(upstream_ca) as up:
        yield up


async def test_a_bare_json_number_comes_back_as_a_string_body(server: TeamServer, shapes: EchoUpstream) -> None:
    add_echo(server, shapes)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    answer = await client.proxy("echo", "GET", "/number")
    assert answer.body == "42"
    called = await client.call("echo", "GET", f"https://127.0.0.1:{shapes.port}/number")
    assert called["body"] == "42"


async def test_plain_text_with_the_secret_is_scrubbed(server: TeamServer, shapes: EchoUpstream) -> None:
    add_echo(server, shapes)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    answer = await client.proxy("echo", "GET", "/text")
    assert isinstance(answer.body, str) and "[REDACTED:echo]" in answer.body and SECRET not in answer.body
    assert SECRET not in json.dumps(answer.headers)


async def test_a_provider_429_with_an_http_date_becomes_an_integer_retry_after(
    server: TeamServer, shapes: EchoUpstream
) -> None:
    add_echo(server, shapes)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    with pytest.raises(RateLimitError) as limited:
        await client.proxy("echo", "GET", "/ratelimited")
    assert 0 < limited.value.retry_after <= 31


async def test_the_proxy_json_has_no_rate_limit_key_and_the_header_is_an_integer(
    server: TeamServer, shapes: EchoUpstream
) -> None:
    add_echo(server, shapes)
    key = new_key(server, "agent", ["echo"])
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False) as raw:
        first = raw.post("/v1/proxy/echo", json={"method": "GET", "path": "/limits"})
        second = raw.post("/v1/proxy/echo", json={"method": "GET", "path": "/limits"})
    assert set(first.json()) == {"status_code", "headers", "body"}
    assert second.headers["X-RateLimit-Remaining"] == "17"
    answer = await ClavisClient(key, base_url=server.url).proxy("echo", "GET", "/limits")
    assert answer.rate_limit_remaining == 17
    checked = await ClavisClient(key, base_url=server.url).check_credentials("echo")
    assert checked["rate_limit_remaining"] == 17


async def test_every_refusal_is_a_json_detail_the_sdk_can_read(server: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(server, upstream)
    key = new_key(server, "agent", ["echo"])
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False) as raw:
        for answer in (
            raw.post("/v1/call/echo", json={"method": "GET", "url": "ftp://127.0.0.1/"}),
            raw.post("/v1/call/echo", json={"method": "BREW", "url": f"https://127.0.0.1:{upstream.port}/"}),
            raw.post("/v1/proxy/echo", json={"method": "GET", "path": "no-slash"}),
            raw.post("/v1/call/echo", content=b"not json"),
            raw.delete("/v1/call/echo"),
        ):
            assert answer.status_code in (400, 405), answer.text
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.json()["detail"]
        huge = raw.post("/v1/call/echo", content=b"[" * (11 * 1024 * 1024))
        assert huge.status_code == 413 and "larger than" in huge.json()["detail"]
    with pytest.raises(ClavisError) as refused:
        await ClavisClient(key, base_url=server.url).call("echo", "GET", "ftp://127.0.0.1/")
    assert refused.value.status_code == 400


async def test_a_team_budget_refuses_with_a_429_the_sdk_reads(server: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(server, upstream, budget={"max_requests": 2, "period_seconds": 3600})
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    for _ in range(2):
        await client.proxy("echo", "GET", "/")
    with pytest.raises(RateLimitError) as limited:
        await client.proxy("echo", "GET", "/")
    assert limited.value.retry_after >= 1
    assert len(upstream.received) == 2
