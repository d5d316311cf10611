"""Issue 12 points 9 and 13: every part of a response is in scope (SECURITY-CASES principle 45).

An upstream that reflects the credential in the reason phrase, a header name, trailers, a
transfer coding, WebSocket control frames, across WebSocket messages, in the raw bytes after a
``101`` to another protocol, or in bytes the engine quotes in its own error texts: through the
real embedded proxy, to an HTTPS_PROXY agent (curl or a hand-written client) and on the
call_service path (the client names its service, so the response is kept whole), the secret
never arrives, nor reaches a log or the audit file, and a response with trailers completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
import wsproto
import wsproto.events

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.redaction.redactor import forms_of
from tests.conftest import PROXY_TOKEN, PROXY_USER
from tests.proxy.conftest import A_HOST, SECRET_A, SECRET_B, RawClient, Upstream, proxy_to
from tests.proxy.reflecting_parts import parts_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FORMS = forms_of(SECRET_A) | forms_of(SECRET_A.lower()) | forms_of(SECRET_B)
LOWER_CASED = {form.lower() for form in forms_of(SECRET_A)}  # spellings as an HTTP/2 hop lower-cases a name
CALL_SERVICE = ("-H", "X-Clavis-Service: alpha")  # what call_service sends: the response is kept whole


def leaked(data: bytes) -> set[bytes]:
    return {form for form in FORMS if form in data}


@pytest.fixture(autouse=True)
def no_secret_in_logs_or_audit(home: Path, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Case 26 for these tests: no spelling of a secret in a log record (at DEBUG, tracebacks
    included, of the test and its set-up) or in an audit file."""
    caplog.set_level(logging.DEBUG)
    yield
    logged = [caplog.handler.format(record) for when in ("setup", "call") for record in caplog.get_records(when)]
    texts = [text.encode() for text in (*logged, caplog.text)]
    texts += [path.read_bytes() for path in home.glob("audit*") if path.is_file()]
    places = sum(bool(leaked(text)) for text in texts)
    assert places == 0, f"a spelling of a secret reached {places} log records or audit files"


@pytest.fixture
async def parts_proxy(
    services: Vault, audit: AuditLog, home: Path, routed_leaf: trustme.LeafCert
) -> AsyncIterator[EmbeddedProxy]:
    with parts_upstream(routed_leaf) as (port, received):
        async with proxy_to(services, audit, home, Upstream(port, received)) as proxy:
            yield proxy


async def curl(proxy: EmbeddedProxy, home: Path, path: str, *args: str) -> tuple[int, bytes, str]:
    """curl as an HTTPS_PROXY agent: exit code, the response as shown with ``-i``, stderr."""
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-i", "--suppress-connect-headers", "--proxy", f"http://127.0.0.1:{proxy.port}",
        "--proxy-user", f"{PROXY_USER}:{PROXY_TOKEN}", "--cacert", str(LocalCA(home / "certs").cert_path),
        "--max-time", "20", *args, f"https://{A_HOST}{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err.decode(errors="replace")


def audit_records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


async def test_secret_in_the_reason_phrase_is_scrubbed(parts_proxy: EmbeddedProxy, home: Path) -> None:
    code, out, err = await curl(parts_proxy, home, "/reason", "--http1.1")
    assert code == 0, err
    assert out.startswith(b"HTTP/1.1 401 Invalid API key [REDACTED:alpha]\r\n"), out[:80]
    assert not leaked(out)
    assert audit_records(home)[-1]["redactions"] == 1


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
async def test_secret_in_a_response_header_name_is_scrubbed(
    parts_proxy: EmbeddedProxy, home: Path, version: str
) -> None:
    """Also lower-cased, as an HTTP/2 upstream must send a name: the case of a name carries no meaning."""
    code, out, err = await curl(parts_proxy, home, "/header-name", version)
    assert code == 0, err
    assert not leaked(out) and not leaked(out.lower())
    assert not [form for form in LOWER_CASED if form in out.lower()]
    assert b"x-kept: 3" in out.lower() and out.endswith(b"ok")
    assert audit_records(home)[-1]["redactions"] == 4


@pytest.mark.parametrize("protocol", ["tcp", "h2c"])
async def test_upgrade_to_a_non_websocket_protocol_is_refused(
    parts_proxy: EmbeddedProxy, home: Path, protocol: str
) -> None:
    """After a ``101`` to another protocol the engine would relay raw bytes no hook sees (the
    upstream sends the secret right behind the ``101``, in the same read)."""
    raw = await RawClient.connect(parts_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    upgrade = f"Connection: Upgrade\r\nUpgrade: {protocol}\r\n"
    refused = await raw.send(f"GET /upgrade/{protocol} HTTP/1.1\r\nHost: {A_HOST}\r\n{upgrade}\r\n".encode())
    follow_up = await raw.send(f"GET /reason HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert refused.status == 502
    assert b"non-WebSocket protocol" in refused.body and not leaked(refused.body + repr(refused.headers).encode())
    assert follow_up.status == 401 and follow_up.body == b"no"  # the client's connection is still in step
    assert [record["decision"] for record in audit_records(home)] == ["refused", "injected"]


async def test_upgrade_answered_to_an_http2_client_is_refused(parts_proxy: EmbeddedProxy, home: Path) -> None:
    """HTTP/2 has no upgrade: an upstream that switches protocols anyway is refused all the same."""
    code, out, err = await curl(parts_proxy, home, "/upgrade/tcp", "--http2")
    assert code == 0, err
    assert out.startswith(b"HTTP/2 502"), out[:80]
    assert not leaked(out)


@pytest.mark.parametrize("client", [(), CALL_SERVICE], ids=["agent", "call_service"])
async def test_transfer_encoding_gzip_chunked_is_scrubbed_or_refused(
    parts_proxy: EmbeddedProxy, home: Path, client: tuple[str, ...]
) -> None:
    """The body is gzip on the wire without a Content-Encoding: a scan of it sees no secret, and a
    client that undoes the transfer coding would. The proxy refuses to relay a coding it did not scan."""
    code, out, err = await curl(parts_proxy, home, "/te-gzip", "--http1.1", *client)
    assert code == 0, err
    assert out.startswith(b"HTTP/1.1 502 "), out[:80]
    assert b"transfer coding not scanned (gzip)" in out
    assert not leaked(out)
    assert audit_records(home)[-1]["decision"] == "refused"


@pytest.mark.parametrize("client", [(), CALL_SERVICE], ids=["agent", "call_service"])
@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
async def test_chunked_response_with_trailers_completes_without_unscrubbed_trailers(
    parts_proxy: EmbeddedProxy, home: Path, version: str, client: tuple[str, ...]
) -> None:
    """The engine cut the HTTP/1.1 body before its last chunk and reset the HTTP/2 stream."""
    code, out, err = await curl(parts_proxy, home, "/trailers", version, *client)
    assert code == 0, err  # curl exits 18 (partial body) or 92 (stream reset) on an incomplete response
    assert b"hello world" in out
    assert not leaked(out)
    assert audit_records(home)[-1]["decision"] == "injected"


async def _websocket_session(proxy: EmbeddedProxy, home: Path) -> tuple[list[str], list[bytes], tuple[int, str], bytes]:
    """Open a WebSocket through the proxy; answer pings; return the text messages, the ping payloads,
    the close code and reason, and every byte that arrived."""
    raw = await RawClient.connect(proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    raw.writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {A_HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode()
    )
    seen = await asyncio.wait_for(raw.reader.readuntil(b"\r\n\r\n"), 10)
    assert seen.startswith(b"HTTP/1.1 101 "), seen[:80]
    ws = wsproto.Connection(wsproto.ConnectionType.CLIENT)
    messages: list[str] = []
    pings: list[bytes] = []
    close: tuple[int, str] | None = None
    try:
        while close is None:
            data = await asyncio.wait_for(raw.reader.read(65536), 10)
            assert data, "the connection ended before a close frame"
            seen += data
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto.events.TextMessage):
                    messages.append(event.data)
                elif isinstance(event, wsproto.events.Ping):
                    pings.append(bytes(event.payload))
                    raw.writer.write(ws.send(event.response()))
                elif isinstance(event, wsproto.events.CloseConnection):
                    close = (event.code, event.reason or "")
    finally:
        await raw.close()
    return messages, pings, close, seen


async def test_websocket_close_reason_and_ping_are_scrubbed(parts_proxy: EmbeddedProxy, home: Path) -> None:
    _, pings, (code, reason), seen = await _websocket_session(parts_proxy, home)
    assert pings == [b"[REDACTED:alpha]"]
    assert (code, reason) == (4001, "bad key [REDACTED:alpha]")
    assert not leaked(seen)


async def test_secret_split_across_two_websocket_messages_is_scrubbed(parts_proxy: EmbeddedProxy, home: Path) -> None:
    """The messages are passed on as they come (never held back for the next one); what the
    client can put together from them holds no more of the secret than its first characters."""
    messages, _, _, seen = await _websocket_session(parts_proxy, home)
    assert len(messages) == 2
    assert messages[0] == "token part one [REDACTED:alpha]"
    assert messages[1] == "[REDACTED:alpha] and the rest"
    assert not leaked("".join(messages).encode()) and not leaked(seen)


@pytest.mark.parametrize("path", ["/cut-head", "/bad-status", "/after-the-end"])
async def test_upstream_bytes_in_the_engines_errors_are_not_passed_on(
    parts_proxy: EmbeddedProxy, home: Path, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    """mitmproxy names the bytes it could not parse, or did not expect, in its error text: that
    text goes to the client's 502 page, the log and the audit record's reason."""
    code, out, err = await curl(parts_proxy, home, path, "--http1.1")
    assert not leaked(out) and not leaked(err.encode())
    assert not any(leaked(caplog.handler.format(record).encode()) for record in caplog.get_records("call"))
    assert not leaked((home / "audit.jsonl").read_bytes())
