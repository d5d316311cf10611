"""A ``_method`` override hidden from the approval and the method policy (UI re-review, MEDIUM-2).

Node keeps the first of two ``Content-Type`` fields, so a form field ``_method=DELETE`` sent with
a form type and then a JSON type is a DELETE to Express's method-override, where the proxy read
the joined value and judged no field; body-parser inflates a gzip body before reading it, where
the proxy judged no compressed JSON. A real embedded proxy in both modes (MITM and base URL, the
same port) in front of the loopback echo upstream, which records what reached it.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from clavis_mcp.addons.flowmeta import REFUSED_HEADER
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.approvals import ApprovalHold, Approvals, Held, needs_for
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, make_service, proxy_client, running_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FORM = ("Content-Type", "application/x-www-form-urlencoded")
JSON = ("Content-Type", "application/json")
GZIP = ("Content-Encoding", "gzip")
AMBIGUOUS = [
    ("two-content-types-form-first", b"_method=DELETE", [FORM, JSON], "more than one Content-Type header"),
    ("two-content-encodings", gzip.compress(gzip.compress(b"_method=DELETE")), [FORM, GZIP, GZIP],
     "more than one Content-Encoding header"),
    ("a-list-in-one-content-type", b"_method=DELETE", [("Content-Type", f"{FORM[1]}, {JSON[1]}")],
     "a Content-Type header naming more than one media type"),
]  # fmt: skip
MODES = ["mitm", "base-url"]


def hold(home: Path) -> ProxyConfig:
    approvals = ApprovalHold(home, needs_for("writes"), timeout=10, poll=0.05)
    return ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=approvals)


@pytest.fixture
async def holding(vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream) -> AsyncIterator[EmbeddedProxy]:
    """Writes to the service wait for a person."""
    vault.add_service(make_service("echo", f"127.0.0.1:{upstream.port}", local=True), validate_secret(SECRET))
    async with running_proxy(vault, audit, home, hold(home)) as started:
        yield started


@pytest.fixture
async def limited(vault: Vault, audit: AuditLog, home: Path, upstream: EchoUpstream) -> AsyncIterator[EmbeddedProxy]:
    """The service allows GET, HEAD and POST only; nothing waits for a person."""
    service = make_service("echo", f"127.0.0.1:{upstream.port}", local=True, methods=("GET", "HEAD", "POST"))
    vault.add_service(service, validate_secret(SECRET))
    async with running_proxy(vault, audit, home) as started:
        yield started


def send(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, mode: str, method: str, body: bytes,
    headers: list[tuple[str, str]],
) -> asyncio.Task[httpx.Response]:  # fmt: skip
    """``method`` to the service's ``/v1/files/important`` as an agent in ``mode`` sends it."""

    async def go() -> httpx.Response:
        if mode == "mitm":
            async with proxy_client(proxy, home) as client:
                url = f"https://127.0.0.1:{upstream.port}/v1/files/important"
                return await client.request(method, url, content=body, headers=headers, timeout=60)
        async with httpx.AsyncClient(trust_env=False) as client:
            keyed = [*headers, ("Authorization", f"Bearer {PROXY_TOKEN}")]
            url = f"{proxy.url}/s/echo/v1/files/important"
            return await client.request(method, url, content=body, headers=keyed, timeout=60)

    return asyncio.create_task(go())


async def held(queue: Approvals) -> Held:
    with anyio.fail_after(20):
        while not (found := queue.pending()):
            await asyncio.sleep(0.05)
    (one,) = found
    return one


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("body", "headers", "reason"), [c[1:] for c in AMBIGUOUS], ids=[c[0] for c in AMBIGUOUS])
async def test_an_ambiguous_content_type_or_encoding_is_refused_before_anyone_is_asked_and_nothing_is_sent(
    holding: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream, mode: str,
    body: bytes, headers: list[tuple[str, str]], reason: str,
) -> None:  # fmt: skip
    response = await send(holding, home, upstream, mode, "POST", body, headers)
    assert response.status_code == 400
    assert reason in response.headers[REFUSED_HEADER]
    assert Approvals(vault.store).pending() == []
    assert upstream.received == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["POST", "HEAD"])
async def test_a_method_override_in_a_gzip_json_body_waits_as_the_delete_it_asks_for(
    holding: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream, mode: str, method: str
) -> None:
    queue = Approvals(vault.store)
    request = send(holding, home, upstream, mode, method, gzip.compress(b'{"_method":"DELETE"}'), [JSON, GZIP])
    waiting = await held(queue)
    assert (waiting.method, waiting.judged) == (f"{method} (the body field _method: DELETE)", "DELETE")
    assert waiting.preview == '{"_method":"DELETE"}'
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403
    assert upstream.received == []


LIMITED = [
    ("two-content-types-form-first", "POST", b"_method=DELETE", [FORM, JSON], 400),
    ("gzip-json", "POST", gzip.compress(b'{"_method":"DELETE"}'), [JSON, GZIP], 405),
    ("gzip-json-head", "HEAD", gzip.compress(b'{"_method":"DELETE"}'), [JSON, GZIP], 405),
    ("deflate-then-gzip-form", "POST", gzip.compress(zlib.compress(b"_method=DELETE")),
     [FORM, ("Content-Encoding", "deflate, gzip")], 405),
]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("method", "body", "headers", "status"), [c[1:] for c in LIMITED], ids=[c[0] for c in LIMITED])
async def test_a_service_limited_to_get_head_and_post_refuses_the_hidden_delete(
    limited: EmbeddedProxy, home: Path, upstream: EchoUpstream, mode: str,
    method: str, body: bytes, headers: list[tuple[str, str]], status: int,
) -> None:  # fmt: skip
    response = await send(limited, home, upstream, mode, method, body, headers)
    assert response.status_code == status
    assert REFUSED_HEADER in response.headers
    assert upstream.received == []
