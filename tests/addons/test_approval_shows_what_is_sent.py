"""A held request shows the approver what will be sent, and is judged by it (review 6, M1).

A real proxy holds writes (``writes`` policy) in front of the loopback echo upstream, which
records what reached it; decisions are made through the shared queue, as the page and the CLI
make them. Method overrides (``X-HTTP-Method-Override: DELETE``) are shown and judged, query
values are shown scrubbed, and the body preview is decoded, sized and not pushed out of sight.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable
from pathlib import Path

import anyio
import httpx
import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.approvals import Approvals, Held, decide_and_record
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def proxy(writes_held_proxy: EmbeddedProxy) -> EmbeddedProxy:
    return writes_held_proxy


def send(proxy: EmbeddedProxy, home: Path, method: str, url: str, **kw: object) -> asyncio.Task[httpx.Response]:
    async def go() -> httpx.Response:
        async with proxy_client(proxy, home) as client:
            return await client.request(method, url, timeout=60, **kw)  # type: ignore[arg-type]

    return asyncio.create_task(go())


async def held(queue: Approvals, count: int = 1) -> list[Held]:
    with anyio.fail_after(20):
        while len(found := queue.pending()) < count:
            await asyncio.sleep(0.05)
    return found


async def approved(queue: Approvals, request: Awaitable[httpx.Response], **decision: int) -> dict[str, object]:
    (one,) = await held(queue)
    queue.decide(one.id, approve=True, by="ui", **decision)
    response = await request
    assert response.status_code == 200
    got: dict[str, object] = json.loads(response.text)
    return got


async def test_a_get_carrying_a_delete_override_waits_as_a_write_and_shows_both_methods(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    request = send(proxy, home, "GET", f"https://127.0.0.1:{upstream.port}/v1/files/important",
                   headers={"X-HTTP-Method-Override": "DELETE"})  # fmt: skip
    (waiting,) = await held(queue)
    assert (waiting.method, waiting.judged) == ("GET (X-HTTP-Method-Override: DELETE)", "DELETE")
    assert upstream.received == []  # nothing went out before a person said so
    queue.decide(waiting.id, approve=True, by="ui")
    assert (await request).status_code == 200


async def test_a_post_overridden_to_delete_shows_the_override_and_the_query_values_scrubbed(
    proxy: EmbeddedProxy, home: Path, vault: Vault, audit: AuditLog, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    path = f"/v1/messages?channel=%23general&text=wire+%2410k+to+acct+666&echo={SECRET}"
    request = send(proxy, home, "POST", f"https://127.0.0.1:{upstream.port}{path}", json={"title": "hello"},
                   headers={"X-HTTP-Method-Override": "DELETE"})  # fmt: skip
    (waiting,) = await held(queue)
    assert waiting.method == "POST (X-HTTP-Method-Override: DELETE)"
    shown = path.replace(SECRET, "[REDACTED:echo]")
    assert waiting.url == f"https://127.0.0.1:{upstream.port}{shown}"
    assert (waiting.size, waiting.preview) == ("17 bytes", '{"title":"hello"}')
    decide_and_record(queue, audit, waiting.id, approve=True, by="cli")
    got = json.loads((await request).text)
    assert (got["method"], got["headers"]["X-HTTP-Method-Override"]) == ("POST", "DELETE")
    (decision,) = [r for r in audit.records() if r.get("action") == "approve"]
    assert decision["method"] == "DELETE"
    assert decision["path"] == "/v1/messages?channel=&text=&echo="  # the audit log keeps no query value


async def test_a_grant_for_posts_does_not_let_a_post_overridden_to_delete_through(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    url = f"https://127.0.0.1:{upstream.port}/v1/files/important"
    await approved(queue, send(proxy, home, "POST", url, json={}), minutes=10)
    overridden = send(proxy, home, "POST", url, json={}, headers={"X-HTTP-Method": "DELETE"})
    (waiting,) = await held(queue)
    assert (waiting.method, waiting.judged) == ("POST (X-HTTP-Method: DELETE)", "DELETE")
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await overridden).status_code == 403


async def test_a_gzip_body_is_previewed_decoded_with_its_coding_and_length(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    body = gzip.compress(json.dumps({"action": "delete_repository", "echo": SECRET}).encode())
    request = send(proxy, home, "POST", f"https://127.0.0.1:{upstream.port}/v1/x", content=body,
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})  # fmt: skip
    (waiting,) = await held(queue)
    assert waiting.size == f"gzip, {len(body)} bytes"
    assert waiting.preview == '{"action": "delete_repository", "echo": "[REDACTED:echo]"}'
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403


async def test_a_body_that_does_not_decode_is_named_not_shown(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    request = send(proxy, home, "PUT", f"https://127.0.0.1:{upstream.port}/v1/x", content=b"\x1f\x8bnot gzip",
                   headers={"Content-Encoding": "gzip"})  # fmt: skip
    (waiting,) = await held(queue)
    assert waiting.preview == "encoded body (gzip, 10 bytes), not shown"
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403


async def test_whitespace_padding_cannot_push_the_body_out_of_the_preview(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    padded = b'{"note": "' + b" " * 400 + b"\n\t" * 200 + b'", "action": "transfer_ownership", "to": "attacker"}'
    request = send(proxy, home, "POST", f"https://127.0.0.1:{upstream.port}/v1/x", content=padded,
                   headers={"Content-Type": "application/json"})  # fmt: skip
    (waiting,) = await held(queue)
    assert waiting.size == f"{len(padded)} bytes"
    assert waiting.preview == '{"note": " ", "action": "transfer_ownership", "to": "attacker"}'
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403


async def test_a_request_whose_override_cannot_be_read_waits_as_a_write_and_says_why(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    form = gzip.compress(b"_method=DELETE&pad=" + b"a" * 70_000)  # decodes past the 64 KiB it is read to
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}
    request = send(proxy, home, "GET", f"https://127.0.0.1:{upstream.port}/v1/x", content=form, headers=headers)
    (waiting,) = await held(queue)
    assert waiting.judged == "*"
    assert waiting.method.startswith("GET (the request has a compressed body that decodes to more than 64 KiB")
    assert waiting.preview == (  # decoded for the person, who can judge it
        "_method=DELETE&pad=" + "a" * 281 + "... (the rest not shown: the body decodes to more than 64 KiB)"
    )
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403
