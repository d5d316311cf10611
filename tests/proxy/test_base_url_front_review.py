"""The base-URL front against the attacks of its review (/tmp/rev18, F1-F10): each test is named
for the attack and failed on the front before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from mitmproxy import http
from mitmproxy.test import tflow

from clavis_mcp.addons.flowmeta import refuse
from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy, base_url_front
from clavis_mcp.proxy.body_limit import RequestBodyLimit
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import PROXY_TOKEN, PROXY_USER
from tests.proxy.conftest import ROUTED, RawClient
from tests.proxy.front_upstream import MIB, FrontUpstream, front_upstream
from tests.proxy.routing import LoopbackRoutes
from tests.proxy.test_base_url_front import front, last_record

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
KEY = f"Authorization: Bearer {PROXY_TOKEN}\r\n"


@pytest.fixture
def upstream(routed_leaf: trustme.LeafCert) -> Iterator[FrontUpstream]:
    with front_upstream(routed_leaf) as up:
        yield up


def head(port: int | None, target: str = "/s/alpha/v1", extra: str = "", method: str = "POST") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}".encode()


async def closed_by_proxy(raw: RawClient) -> bool:
    """Whether the proxy closes the connection (what it still sends is read and dropped)."""
    async with asyncio.timeout(10):
        while await raw.reader.read(65536):
            pass
    return True


async def test_a_refused_requests_large_body_is_never_read_the_answer_comes_first(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F1: no agent key and a 200 MiB Content-Length: the 401 comes on the head, with the
    connection closed after it, while nearly all of the body is still unsent."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            raw.writer.write(head(proxy.port, extra=f"Content-Length: {200 * MIB}\r\n\r\n") + b"a" * 65536)
            response = await raw.read()
            assert await closed_by_proxy(raw)
    assert response.status == 401 and response.headers["connection"] == "close"
    assert upstream.seen == []


async def test_a_refused_request_whose_small_body_came_with_it_keeps_the_connection(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            first = await raw.send(head(proxy.port, extra="Content-Length: 2\r\n\r\n") + b"{}")
            second = await raw.send(head(proxy.port, extra=KEY + "Content-Length: 2\r\n\r\n") + b"{}")
    assert (first.status, second.status) == (401, 200)
    assert "connection" not in first.headers


async def test_the_front_bounds_a_chunked_body_with_no_body_limit_stage(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F1: the embedded proxy has no RequestBodyLimit stage; the front's own bound holds."""
    monkeypatch.setenv("CLAVIS_MAX_REQUEST_BYTES", "1000")
    chunk = b"a" * 600
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, extra=KEY + "Transfer-Encoding: chunked\r\n\r\n") + body)
    assert response.status == 413 and b"CLAVIS_MAX_REQUEST_BYTES" in response.body
    assert upstream.seen == []
    assert last_record(services)["decision"] == "error"


async def test_a_response_framed_by_both_length_and_chunks_is_refused_not_buffered(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F3: "Content-Length: 5" and 2 MiB chunked: h11 reads the chunks, the redaction stage
    chose to buffer by the small length; the front now refuses the response on its head."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, "/s/alpha/cl-te", KEY + "\r\n", method="GET"))
    assert response.status == 502 and b"both Content-Length and Transfer-Encoding" in response.body
    assert last_record(services)["decision"] == "error"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_bytes_an_upstream_sends_after_a_whole_response_never_answer_the_next_request(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, method: str
) -> None:
    """F4: the upstream answers, then, once the connection is idle, sends a second response no
    request asked for: the next request (another client connection) must not receive it."""
    path = "/s/alpha/late" if method == "GET" else "/s/alpha/head-late"
    async with front(services, audit, home, upstream.port) as proxy:
        for target, verb in ((path, method), ("/s/alpha/next", "GET")):
            async with RawClient.connected(proxy) as raw:
                response = await raw.send(head(proxy.port, target, KEY + "\r\n", method=verb), head=verb == "HEAD")
            await asyncio.to_thread(upstream.late_sent.wait, 10)
    assert response.status == 200 and b"SMUGGLED" not in response.body
    assert b'"/next"' in response.body


@pytest.mark.parametrize("name", ["Transfer_Encoding", "Content_Length", "Keep-Alive_", "Proxy.Connection"])
async def test_look_alike_framing_header_names_are_never_forwarded(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, name: str
) -> None:
    """F4: an upstream that reads '_' as '-' would frame the request by the agent's look-alike."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, extra=KEY + f"{name}: 1\r\nContent-Length: 2\r\n\r\n") + b"{}")
    assert response.status == 200
    assert [s.headers for s in upstream.seen if name.lower() in s.headers] == []


async def test_a_client_that_stops_sending_its_body_is_answered_408(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F5: a whole head with a Content-Length and no body held the connection for ever."""
    monkeypatch.setattr(base_url_front, "BODY_READ_SECONDS", 0.3)
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, extra=KEY + "Content-Length: 10\r\n\r\n") + b"abc")
    assert response.status == 408 and upstream.seen == []


async def test_a_head_sent_a_few_bytes_at_a_time_is_cut_off_at_its_deadline(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F5: a head trickled in stays open while each read comes within the idle time; the head
    as a whole now has a deadline."""
    monkeypatch.setattr(base_url_front, "HEAD_SECONDS", 0.3)
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            raw.writer.write(head(proxy.port, method="GET"))
            async with asyncio.timeout(10):
                while not raw.reader.at_eof():  # the proxy closes the connection, saying nothing
                    raw.writer.write(b"X-Drip: 1\r\n")
                    await asyncio.sleep(0.05)
    assert upstream.seen == []


async def test_a_head_longer_than_the_limit_is_refused_even_when_it_came_whole(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F5: the 64 KiB bound held only while the head's end had not been seen."""
    padding = f"X-Pad: {'p' * 70000}\r\n"
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, extra=KEY + padding + "Content-Length: 0\r\n\r\n"))
    assert response.status == 431 and b"malformed request head" in response.body  # ours, not the upstream's


async def test_past_the_connection_cap_a_new_base_url_connection_is_answered_503(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F5: connections holding half a head each took a file descriptor, without limit."""
    monkeypatch.setattr(base_url_front, "MAX_CLIENTS", 2)
    async with front(services, audit, home, upstream.port) as proxy:
        held = [await RawClient.connect(proxy) for _ in range(2)]
        try:
            for raw in held:
                raw.writer.write(head(proxy.port, method="GET"))
                await raw.writer.drain()
            async with asyncio.timeout(10):
                while len(proxy._front._clients) < 2:  # both are being served
                    await asyncio.sleep(0.01)
            extra = await RawClient.connect(proxy)
            try:
                response = await extra.send(head(proxy.port, method="GET", extra=KEY + "\r\n"))
            finally:
                await extra.close()
        finally:
            for raw in held:
                await raw.close()
    assert response.status == 503 and upstream.seen == []


class RefuseOnHeaders:
    """A stage that refuses a response on its head (as redaction does what it cannot scan)."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and flow.request.path.endswith("/buffered"):
            refuse(flow, 502, "refused on the response's head")


async def test_a_refusal_made_on_the_response_head_never_carries_the_upstreams_body(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F2: the upstream's body was read into the stage's refusal and sent under its headers
    (a gzip body then went out unscanned)."""
    async with front(services, audit, home, upstream.port, RefuseOnHeaders()) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, "/s/alpha/buffered", KEY + "\r\n", method="GET"))
    assert response.status == 502
    assert response.body == b"clavis-mcp refused this request: refused on the response's head\n"


@pytest.mark.parametrize(
    "framing",
    ["Content-Length: 3\nTransfer-Encoding: chunked\n\n0\r\n\r\n", "Content-Length: 2\nContent-Length: 2\n\n{}"],
    ids=["cl-and-te", "duplicate-cl"],
)
async def test_a_bare_lf_head_framed_two_ways_is_refused_like_a_crlf_one(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, framing: str
) -> None:
    """F9: the pre-check looked for names after CRLF only; h11 reads heads split by bare LF."""
    request = f"POST /s/alpha/v1 HTTP/1.1\nHost: 127.0.0.1:PORT\n{KEY.strip()}\n{framing}"
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(request.replace("PORT", str(proxy.port)).encode())
    assert response.status == 400 and upstream.seen == []


async def test_the_body_limit_watches_a_chunked_body_whatever_its_content_length_says() -> None:
    """F9: a numeric Content-Length beside Transfer-Encoding stopped the watch of the body."""
    flow = tflow.tflow()
    flow.request.headers["content-length"] = "1"
    flow.request.headers["transfer-encoding"] = "chunked"
    limit = RequestBodyLimit(1000)
    limit.requestheaders(flow)
    try:
        assert "clavis.body_watch" in flow.metadata
    finally:
        limit.error(flow)


async def test_an_upstream_connection_header_naming_our_headers_does_not_remove_them(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F7: "Connection: keep-alive, X-Clavis-Redactions, X-Clavis-Audit-Id" from the upstream
    removed the headers our stages had added, at send time."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, "/s/alpha/connection-named", KEY + "\r\n", method="GET"))
    assert response.headers["x-clavis-audit-id"] == last_record(services)["id"]
    assert response.headers["x-clavis-redactions"] == "1"
    assert b"[REDACTED:alpha]" in response.body


@pytest.mark.parametrize(
    "target",
    [
        f"http://127.0.0.1:PORT/a/{PROXY_TOKEN}/s/alpha/v1",  # absolute form: to mitmproxy's engine
        f"/{PROXY_TOKEN}/s/alpha/v1",  # a typo: not a base-URL path, to the engine too
        f"/s/alpha/v1/{PROXY_TOKEN.upper()}",  # the agent's own doing, forwarded, never recorded
    ],
    ids=["absolute-form", "no-a-prefix", "in-a-path-segment"],
)
async def test_an_agent_key_in_a_url_is_never_written_into_the_audit(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, target: str
) -> None:
    """F6: the engine's records kept /a/<key>/... as it came (records are replicated)."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            request = head(proxy.port, target.replace("PORT", str(proxy.port)), KEY + "\r\n", method="GET")
            response = await raw.send(request)
    record = last_record(services)
    assert response.status in (200, 400, 403, 404, 407)
    assert PROXY_TOKEN.lower() not in repr(record).lower()
    assert "[REDACTED:agent-key]" in record["path"]


async def test_a_request_framed_two_ways_is_refused_with_an_audit_record(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F10: the framing refusal left no record."""
    framing = "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, extra=KEY + framing))
    record = last_record(services)
    assert response.status == 400 and upstream.seen == []
    assert (record["decision"], record["reason"]) == (
        "refused",
        "request refused: both Content-Length and Transfer-Encoding",
    )


OTHER_AGENT, OTHER_TOKEN = "other-agent", "other-agent-token-for-tests-98765"


async def test_two_agents_never_share_an_upstream_connection(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F4: an idle connection one agent used answered the next agent's request."""
    routes = LoopbackRoutes(dict.fromkeys(ROUTED, upstream.port))
    tokens = {PROXY_USER: PROXY_TOKEN, OTHER_AGENT: OTHER_TOKEN}
    config = ProxyConfig(tokens=lambda: tokens, extra_addons=(routes,), resolver=routes.resolve)
    proxy = EmbeddedProxy(services, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        for token in (PROXY_TOKEN, OTHER_TOKEN, PROXY_TOKEN, OTHER_TOKEN):
            async with RawClient.connected(proxy) as raw:
                key = f"Authorization: Bearer {token}\r\n\r\n"
                assert (await raw.send(head(proxy.port, "/s/alpha/v1", key, method="GET"))).status == 200
    finally:
        await proxy.stop()
    assert len(upstream.seen) == 4 and len(upstream.connections()) == 2


async def test_a_body_redaction_leaves_whole_is_cut_at_the_streaming_threshold(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """F3: a body in an encoding redaction cannot decode, of no declared length, is left whole
    for the response hook to refuse: it was held whole first, however long."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(head(proxy.port, "/s/alpha/unknown-coding", KEY + "\r\n", method="GET"))
    assert response.status == 502 and b"cannot scan it as a stream" in response.body
