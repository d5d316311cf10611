"""The base-URL front (proxy/base_url_front.py) end to end: a real embedded proxy, plain HTTP on
loopback, a real HTTPS upstream that records which connection each request came on."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trustme

from clavis_mcp.addons.failures import BAD_RESPONSE, RESET
from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy, base_url_front
from clavis_mcp.proxy.body_limit import RequestBodyLimit
from clavis_mcp.proxy.draining import STOPPED, Draining
from clavis_mcp.proxy.in_process import InProcessTransport
from clavis_mcp.proxy.upstream_timeout import UpstreamTimeout
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import PROXY_TOKEN, PROXY_USER, make_service, proxy_client, running_proxy
from tests.proxy.conftest import A_HOST, ROUTED, SECRET_A, SECRET_B, SHARED_HOST, RawClient
from tests.proxy.front_upstream import MIB, FrontUpstream, front_upstream
from tests.proxy.routing import LoopbackRoutes

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
AGENT = {"Authorization": f"Bearer {PROXY_TOKEN}"}


@pytest.fixture
def upstream(routed_leaf: trustme.LeafCert) -> Iterator[FrontUpstream]:
    with front_upstream(routed_leaf) as up:
        yield up


@asynccontextmanager
async def front(
    vault: Vault, audit: AuditLog, home: Path, port: int, *extra: object, resolve_to: dict[str, str] | None = None
) -> AsyncIterator[EmbeddedProxy]:
    routes = LoopbackRoutes(dict.fromkeys(ROUTED, port), resolve_to)
    config = ProxyConfig(
        tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=(routes, *extra), resolver=routes.resolve
    )
    async with running_proxy(vault, audit, home, config) as proxy:
        yield proxy


def base(proxy: EmbeddedProxy, service: str = "alpha") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{proxy.url}/s/{service}", headers=AGENT, trust_env=False)


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def last_record(vault: Vault) -> dict[str, Any]:
    return list(AuditLog.for_vault(vault).records())[-1]


HEAD = "POST /s/alpha/v1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer " + PROXY_TOKEN + "\r\n"


@pytest.mark.parametrize(
    "shape",
    [
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=["cl-and-te", "duplicate-cl", "conflicting-cl", "bad-chunk-size", "te-not-chunked"],
)
async def test_smuggling_shapes_are_refused_and_nothing_goes_upstream(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, shape: str
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send((HEAD.format(port=proxy.port) + shape).encode())
    assert response.status in (400, 501)
    assert response.headers.get("connection") == "close"
    assert upstream.seen == []


REVOKED = "revoked-agent-token-aaaabbbbcccc"
ENCODED = f"%{ord(PROXY_TOKEN[0]):02x}{PROXY_TOKEN[1:]}"  # the current key, one letter percent-encoded


@pytest.mark.parametrize(
    ("first", "rest", "status", "method", "path"),
    [
        ("GET /s/alpha/v1?key=v HTTP/1.1", "Bad Header Line\r\n\r\n", 400, "GET", "/s/alpha/v1?key="),
        ("GET /s/alpha/v1 HTTP/1.1", f"X-Pad: {'p' * 70000}\r\n\r\n", 431, "GET", "/s/alpha/v1"),
        (f"GET /a/{PROXY_TOKEN}/s/alpha/v1 HTTP/1.1", "Bad\r\n\r\n", 400, "GET", "/a/-/s/alpha/v1"),
        (f"GET /a/{REVOKED}/s/alpha/v1 HTTP/1.1", "Bad\r\n\r\n", 400, "GET", "/a/-/s/alpha/v1"),
        (f"GET /a/{ENCODED}/s/alpha/v1 HTTP/1.1", "Bad\r\n\r\n", 400, "GET", "/a/-/s/alpha/v1"),
        ("GET /s/alpha/\x01\x02 HTTP/1.1", "\r\n", 400, "-", "-"),
    ],
    ids=["bad-header-line", "head-too-long", "agent-key", "revoked-agent-key", "encoded-agent-key", "control-bytes"],
)
async def test_an_unreadable_head_is_refused_and_recorded_without_values_or_agent_keys(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream,
    first: str, rest: str, status: int, method: str, path: str,
) -> None:  # fmt: skip
    """One record per decision: a head h11 cannot read was refused with no record at all."""
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            response = await raw.send(f"{first}\r\nHost: 127.0.0.1:{proxy.port}\r\n{rest}".encode())
    assert response.status == status and b"malformed request head" in response.body
    record = last_record(services)
    assert record["decision"] == "refused" and record["reason"] == "request refused: malformed request head"
    assert (record["method"], record["path"], record["source"]) == (method, path, "unauthenticated")
    assert PROXY_TOKEN[1:] not in str(record) and REVOKED not in str(record) and upstream.seen == []


async def test_two_services_on_one_host_never_share_an_upstream_connection(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """One client connection, requests alternating between two services on the same host: each
    service gets its own upstream connection, kept alive, and neither secret reaches the other's."""
    services.add_service(make_service("shared-a", SHARED_HOST, path_prefixes=("/a",)), validate_secret(SECRET_A))
    services.add_service(make_service("shared-b", SHARED_HOST, path_prefixes=("/b",)), validate_secret(SECRET_B))
    async with front(services, audit, home, upstream.port) as proxy:
        async with httpx.AsyncClient(base_url=proxy.url, headers=AGENT, trust_env=False) as client:
            for _ in range(3):
                assert (await client.get("/s/shared-a/a/x")).status_code == 200
                assert (await client.get("/s/shared-b/b/x")).status_code == 200
    by_connection: dict[int, set[str]] = {}
    for seen in upstream.seen:
        by_connection.setdefault(seen.port, set()).add(seen.headers["authorization"])
    assert sorted(map(sorted, by_connection.values())) == sorted([[f"Bearer {SECRET_A}"], [f"Bearer {SECRET_B}"]])


async def test_keep_alive_reuses_one_upstream_connection_across_requests_and_client_connections(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        for _ in range(2):
            async with base(proxy) as client:
                for _ in range(4):
                    assert (await client.get("/v1/models")).status_code == 200
    assert len(upstream.seen) == 8
    assert len(upstream.connections()) == 1


async def test_a_burst_of_clients_finds_its_upstream_connections_again_on_the_next_burst(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """Every connection a burst opened is kept for the next one: a pool capped below the number of
    busy clients closed the rest, and each later request dialled a new TLS connection (at 256
    clients base-URL mode cost more CPU per request than MITM mode)."""
    clients = 24

    async def burst(proxy: EmbeddedProxy, seen_before: int) -> None:
        upstream.release.clear()  # /slow holds every request until the whole burst is upstream
        async with anyio.create_task_group() as tasks:
            for _ in range(clients):
                tasks.start_soon(_get_slow, proxy)
            with anyio.fail_after(10):
                while len(upstream.seen) < seen_before + clients:
                    await anyio.sleep(0.01)
            upstream.release.set()

    async with front(services, audit, home, upstream.port) as proxy:
        await burst(proxy, 0)
        await burst(proxy, clients)
    assert len(upstream.seen) == 2 * clients
    assert len(upstream.connections()) == clients


async def _get_slow(proxy: EmbeddedProxy) -> None:
    async with base(proxy) as client:
        assert (await client.get("/slow", timeout=10)).status_code == 200


async def test_sse_is_streamed_with_a_secret_split_across_chunks_redacted(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        async with client.stream("GET", "/sse") as response:
            text = "".join([chunk async for chunk in response.aiter_text()])
    assert response.headers["transfer-encoding"] == "chunked"
    assert "[REDACTED:alpha]" in text and SECRET_A not in text


async def test_a_one_mib_buffered_body_is_scrubbed_whole(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get("/buffered")
    assert response.status_code == 200
    assert SECRET_A.encode() not in response.content and b"[REDACTED:alpha]" in response.content
    assert int(response.headers["content-length"]) == len(response.content) > MIB - 100
    assert last_record(services)["redactions"] == 1


async def test_a_brotli_bomb_is_refused(services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream) -> None:
    routes = LoopbackRoutes(dict.fromkeys(ROUTED, upstream.port))
    config = ProxyConfig(
        tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=(routes,), resolver=routes.resolve, max_decoded=MIB
    )
    proxy = EmbeddedProxy(services, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        async with base(proxy) as client:
            response = await client.get("/bomb")
    finally:
        await proxy.stop()
    assert response.status_code == 502
    assert "withheld" in response.text and "CLAVIS_MAX_DECODED_BYTES" in response.text


async def test_a_service_host_resolving_to_a_private_address_is_refused_before_any_dial(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port, resolve_to={A_HOST: "10.0.0.5"}) as proxy:
        async with base(proxy) as client:
            response = await client.get("/v1/models")
    assert response.status_code == 502
    assert "private or loopback address 10.0.0.5" in response.text
    assert upstream.seen == []
    record = last_record(services)
    assert (record["decision"], record["service"]) == ("refused", "alpha")


async def test_an_upstream_that_is_down_gives_502_with_the_reason(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, free_port()) as proxy, base(proxy) as client:
        response = await client.get("/v1/models")
    assert response.status_code == 502
    assert f"cannot connect to {A_HOST}:443: connection refused" in response.text
    record = last_record(services)
    assert record["decision"] == "error" and record["reason"].startswith("connect:")
    assert SECRET_A not in response.text


async def test_an_upstream_that_never_answers_gets_504(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port, UpstreamTimeout(0.3)) as proxy, base(proxy) as client:
        response = await client.get("/slow")
    upstream.release.set()
    assert response.status_code == 504
    assert "sent no response within 0.3 s" in response.text
    record = last_record(services)
    assert (record["decision"], record["status"]) == ("error", 504)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_request_body_over_the_bound_is_413_and_not_sent(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, chunked: bool
) -> None:
    body = b"x" * 5000

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    async with front(services, audit, home, upstream.port, RequestBodyLimit(1000)) as proxy, base(proxy) as client:
        response = await client.post("/v1/upload", content=chunks() if chunked else body)
    assert response.status_code == 413
    assert "over the proxy's limit of 1000 bytes" in response.text
    assert upstream.seen == []
    assert last_record(services)["decision"] == "refused"


async def test_a_base_url_audit_record_has_the_fields_of_a_mitm_one(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        async with proxy_client(proxy, home) as client:
            assert (await client.get(f"https://{A_HOST}/v1/models?page=2")).status_code == 200
        mitm = last_record(services)
        async with base(proxy) as client:
            assert (await client.get("/v1/models?page=2")).status_code == 200
        via_base = last_record(services)
    assert via_base.keys() == mitm.keys()
    same = ("source", "service", "method", "scheme", "host", "port", "path", "status", "decision", "redactions")
    assert {k: via_base[k] for k in same} == {k: mitm[k] for k in same}


async def test_headers_in_our_namespace_from_the_upstream_are_replaced(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get("/ours")
    assert response.headers.get_list("x-clavis-audit-id") == [last_record(services)["id"]]
    assert "forged" not in str(response.headers)


@pytest.mark.parametrize(
    ("path", "said"),
    [("/transfer-coding", "transfer coding other than chunked"), ("/upgrade", "does not relay protocol upgrades")],
)
async def test_what_cannot_be_scanned_is_refused_and_never_relayed(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, path: str, said: str
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get(path)
    assert response.status_code == 502 and said in response.text
    assert SECRET_A not in response.text


@pytest.mark.parametrize(
    ("path", "said", "cause"),
    [
        ("/silent", "the upstream closed the connection without answering", RESET),
        ("/closed-line", "invalid HTTP/1.1 from the upstream", BAD_RESPONSE),
    ],
    ids=["no-answer", "illegal-line-with-other-words"],
)
async def test_a_bad_answer_is_named_by_what_broke_not_by_the_words_in_it(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, path: str, said: str, cause: str
) -> None:
    """The upstream's bytes never choose the message: a header line holding "closed" and
    "Transfer-Encoding" is an illegal line, not a disconnection or a transfer coding."""
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get(path)
    assert response.status_code == 502 and said in response.text
    record = last_record(services)
    assert record["decision"] == "error" and record["reason"].startswith(f"{cause}: ")


async def test_trailers_are_never_forwarded(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        async with RawClient.connected(proxy) as raw:
            raw.writer.write(f"GET /s/alpha/trailers HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n".encode()
                             + f"Authorization: Bearer {PROXY_TOKEN}\r\n\r\n".encode())  # fmt: skip
            await raw.writer.drain()
            data = await asyncio.wait_for(raw.reader.readuntil(b"ok\r\n0\r\n\r\n"), 10)
    assert data.endswith(b"\r\n2\r\nok\r\n0\r\n\r\n")
    assert SECRET_A.encode() not in data and b"X-Token" not in data


async def test_a_websocket_upgrade_request_is_refused_with_a_pointer_to_mitm_mode(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}  # fmt: skip
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get("/ws", headers=upgrade)
    assert response.status_code == 400 and "use MITM mode" in response.text
    assert upstream.seen == []


async def test_mitm_mode_works_on_the_same_port_beside_a_base_url_connection(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        assert (await client.get("/v1/first")).status_code == 200
        async with proxy_client(proxy, home) as mitm:
            tunnelled = await mitm.get(f"https://{A_HOST}/v1/second")
        assert (await client.get("/v1/third")).status_code == 200
    assert tunnelled.status_code == 200
    assert tunnelled.json()["headers"]["authorization"] == "[REDACTED:alpha]"
    assert [s.path for s in upstream.seen] == ["/v1/first", "/v1/second", "/v1/third"]


async def test_a_request_to_another_host_on_a_base_url_connection_is_refused(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    """A browser page rebinding its name to loopback sends its own Host: not a base-URL request."""
    async with front(services, audit, home, upstream.port) as proxy, base(proxy) as client:
        response = await client.get("/v1/models", headers={"Host": "evil.test"})
    assert response.status_code == 421
    assert upstream.seen == []


async def test_stopping_fails_a_request_in_flight_and_records_it(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    draining = Draining()
    async with front(services, audit, home, upstream.port, draining) as proxy, base(proxy) as client:
        pending = asyncio.create_task(client.get("/slow"))
        while draining.in_flight == 0:
            await asyncio.sleep(0.01)
        failed = await draining.drain(grace=0.1)
        response = await pending
    upstream.release.set()
    assert failed == 1
    assert response.status_code == 502 and "the proxy was stopped" in response.text
    record = last_record(services)
    assert (record["decision"], record["reason"]) == ("error", STOPPED)


async def test_a_client_that_gives_up_mid_request_is_recorded_as_such(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy:
        raw = await RawClient.connect(proxy)
        raw.writer.write(f"GET /s/alpha/slow HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n".encode()
                         + f"Authorization: Bearer {PROXY_TOKEN}\r\n\r\n".encode())  # fmt: skip
        await raw.writer.drain()
        while not upstream.seen:
            await asyncio.sleep(0.01)
        await raw.close()
        async with asyncio.timeout(10):
            while not list(AuditLog.for_vault(services).records()):
                await asyncio.sleep(0.02)
    upstream.release.set()
    record = last_record(services)
    assert record["decision"] == "error" and record["reason"].startswith("client gave up")


# -- handed over in process (proxy/in_process.py): what the MCP gateway uses -----------------------


def in_process(proxy: EmbeddedProxy, service: str = "alpha") -> httpx.AsyncClient:
    transport = InProcessTransport(proxy.front)
    return httpx.AsyncClient(transport=transport, base_url=f"{proxy.url}/s/{service}", headers=AGENT)


async def test_in_process_requests_get_the_same_injection_redaction_and_record(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream
) -> None:
    async with front(services, audit, home, upstream.port) as proxy, in_process(proxy) as client:
        answer = await client.post("/v1/echo?q=1", content=b"hello")
    assert answer.status_code == 200 and SECRET_A not in answer.text and "[REDACTED:alpha]" in answer.text
    assert [(s.path, s.headers["authorization"]) for s in upstream.seen] == [("/v1/echo?q=1", f"Bearer {SECRET_A}")]
    record = last_record(services)
    assert (record["decision"], record["service"], record["path"]) == ("injected", "alpha", "/v1/echo?q=")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Split": "a\r\nInjected: 1"}, "request refused: malformed request head"),
        ({"Transfer-Encoding": "chunked"}, "request refused: both Content-Length and Transfer-Encoding"),
    ],
    ids=["crlf-in-a-field", "length-and-chunked"],
)
async def test_in_process_heads_are_judged_as_one_read_from_a_socket(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, headers: dict[str, str], reason: str
) -> None:
    """No h11 parses a head handed over in process: the front validates it as h11 would, and
    checks its framing fields for the smuggling shapes, before any stage runs."""
    async with front(services, audit, home, upstream.port) as proxy, in_process(proxy) as client:
        answer = await client.post("/v1/echo", content=b"body", headers=headers)
    assert answer.status_code == 400 and reason in answer.text
    assert upstream.seen == []
    record = last_record(services)
    assert (record["decision"], record["reason"]) == ("refused", reason)


async def test_in_process_requests_keep_the_fronts_bounds_on_heads_and_requests_at_once(
    services: Vault, audit: AuditLog, home: Path, upstream: FrontUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A head handed over in process is never read from a socket, so its size and the number being
    served are bounded where it is handed over: over 64 KiB of head is 431, past the cap is 503."""
    async with front(services, audit, home, upstream.port) as proxy, in_process(proxy) as client:
        big = await client.get("/v1/echo", headers={"X-Pad": "p" * 70_000})
        assert big.status_code == 431 and last_record(services)["reason"] == "request refused: malformed request head"
        monkeypatch.setattr(base_url_front, "MAX_CLIENTS", 0)
        busy = await client.get("/v1/echo")
    assert busy.status_code == 503 and "retry shortly" in busy.text
    assert upstream.seen == []
