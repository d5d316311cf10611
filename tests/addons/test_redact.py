from __future__ import annotations

import base64
import gzip
import zlib

import brotli
import pytest
import wsproto
import wsproto.events
import zstandard
from mitmproxy import http

from clavis_mcp.addons.redact import (
    STREAM_THRESHOLD,
    MessageWindow,
    incremental_decoder,
    scrub_control_frame,
    scrub_headers,
    should_stream,
    unscanned_transfer_codings,
)
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.errors import DecodedTooLarge
from clavis_mcp.vault.redaction.redactor import Redactor


@pytest.mark.parametrize(
    ("content_type", "length", "streamed"),
    [
        ("text/event-stream", "10", True),
        ("text/event-stream; charset=utf-8", None, True),
        ("application/json", "100", False),
        ("application/json", None, True),
        ("application/json", str(STREAM_THRESHOLD + 1), True),
        ("application/json", "not-a-number", True),
    ],
    ids=["sse", "sse-unknown-length", "small-known", "unknown-length", "large", "bad-length"],
)  # fmt: skip
def test_which_responses_stream(content_type: str, length: str | None, streamed: bool) -> None:
    assert should_stream(content_type, length) is streamed


BODY = b'{"echo": "sk-secret-value"}' * 50


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "payload"),
    [("gzip", gzip.compress(BODY)), ("deflate", zlib.compress(BODY)), ("deflate", _raw_deflate(BODY)),
     ("br", brotli.compress(BODY)), ("zstd", zstandard.ZstdCompressor().compress(BODY)), ("identity", BODY)],
    ids=["gzip", "deflate-zlib", "deflate-raw", "br", "zstd", "identity"],
)  # fmt: skip
def test_incremental_decoders_decode_byte_by_byte(encoding: str, payload: bytes) -> None:
    decode = incremental_decoder(encoding)
    assert decode is not None
    assert b"".join(decode(payload[i : i + 1]) for i in range(len(payload))) == BODY


@pytest.mark.parametrize("encoding", ["", "identity", " Identity "])
def test_an_identity_stream_passes_its_chunks_within_the_bound(encoding: str) -> None:
    decode = incremental_decoder(encoding, limit=8)
    assert decode is not None
    assert (decode(b"12345678"), decode(b"")) == (b"12345678", b"")
    with pytest.raises(DecodedTooLarge):
        decode(b"123456789")


def test_unknown_encoding_has_no_decoder() -> None:
    assert incremental_decoder("compress") is None
    assert incremental_decoder("gzip, br") is None


def test_websocket_messages_from_the_server_are_scrubbed(vault: Vault) -> None:
    from mitmproxy import websocket
    from mitmproxy.test import taddons, tflow

    from clavis_mcp.addons.flowmeta import REDACTIONS, SERVICE
    from clavis_mcp.addons.redact import RedactResponse
    from tests.conftest import make_service

    secret = "sk-websocket-0123456789abcdef"
    vault.add_service(make_service("ws", "api.example.com"), validate_secret(secret))
    addon = RedactResponse(vault)
    with taddons.context(addon):
        flow = tflow.twebsocketflow()
        flow.metadata[SERVICE] = "ws"
        assert flow.websocket is not None
        for from_client in (False, True):
            flow.websocket.messages.append(websocket.WebSocketMessage(1, from_client, f"token {secret}".encode()))
            addon.websocket_message(flow)
        server_message, client_message = flow.websocket.messages[-2:]
        assert server_message.content == b"token [REDACTED:ws]"
        assert client_message.content == f"token {secret}".encode()  # the client's own bytes are its business
        assert flow.metadata[REDACTIONS] == 1


HEADER_SECRET = "sk-header-0123456789abcdef"


@pytest.mark.parametrize(
    ("fields", "scrubbed", "count"),
    [
        ([(b"Content-Type", b"application/json"), (b"X-Id", b"42")],
         [(b"Content-Type", b"application/json"), (b"X-Id", b"42")], 0),
        ([(b"Set-Cookie", b"a=1"), (b"Set-Cookie", f"k={HEADER_SECRET}".encode()), (b"set-cookie", b"b=2")],
         [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"k=[REDACTED:svc]"), (b"set-cookie", b"b=2")], 1),
        ([(b"Location", f"/cb?t={HEADER_SECRET}&u={HEADER_SECRET}".encode()), (b"X-Echo", HEADER_SECRET.encode())],
         [(b"Location", b"/cb?t=[REDACTED:svc]&u=[REDACTED:svc]"), (b"X-Echo", b"[REDACTED:svc]")], 3),
    ],
    ids=["clean-headers-untouched", "repeated-header-keeps-order", "several-in-several-headers"],
)  # fmt: skip
def test_scrub_headers(fields: list[tuple[bytes, bytes]], scrubbed: list[tuple[bytes, bytes]], count: int) -> None:
    headers = http.Headers(fields)
    assert scrub_headers(headers, Redactor("svc", [validate_secret(HEADER_SECRET)])) == count
    assert list(headers.fields) == scrubbed


NAME_SECRET = "sk-Name-0123456789ABCdefGHI"
NAME_VALUES = Redactor("svc", [validate_secret(NAME_SECRET)])
NAMES = Redactor("svc", [validate_secret(NAME_SECRET)], [NAME_SECRET.lower()], lower_case=True)


@pytest.mark.parametrize(
    ("fields", "scrubbed", "count"),
    [
        ([(f"X-Key-{NAME_SECRET}".encode(), b"1"), (b"X-Kept", b"2")], [(b"X-Kept", b"2")], 1),
        ([(f"x-key-{NAME_SECRET.lower()}".encode(), b"1"), (b"X-Kept", b"2")], [(b"X-Kept", b"2")], 1),
        ([(f"X-{NAME_SECRET}".encode(), NAME_SECRET.encode()), (b"X-Echo", NAME_SECRET.encode())],
         [(b"X-Echo", b"[REDACTED:svc]")], 2),
        ([(b"x-" + base64.b32encode(NAME_SECRET.encode()).lower(), b"1"), (b"X-Kept", b"2")], [(b"X-Kept", b"2")], 1),
        ([(b"x-" + NAME_SECRET.encode().hex().lower().encode(), b"1"), (b"X-Kept", b"2")], [(b"X-Kept", b"2")], 1),
        ([(b"x-" + base64.b64encode(NAME_SECRET.encode()).lower(), b"1"), (b"X-Kept", b"2")], [(b"X-Kept", b"2")], 1),
        ([(b"X-Kept", b"2")], [(b"X-Kept", b"2")], 0),
    ],
    ids=["secret-in-a-name", "lower-cased-secret-in-a-name", "name-and-values", "base32-lower-cased-by-http2",
         "hex-lower-cased", "base64-lower-cased", "clean-names-untouched"],
)  # fmt: skip
def test_a_field_whose_name_holds_a_secret_is_dropped(
    fields: list[tuple[bytes, bytes]], scrubbed: list[tuple[bytes, bytes]], count: int
) -> None:
    headers = http.Headers(fields)
    assert scrub_headers(headers, NAME_VALUES, NAMES) == count
    assert list(headers.fields) == scrubbed


@pytest.mark.parametrize(
    ("transfer_encoding", "codings"),
    [("", []), ("chunked", []), ("Chunked", []), ("identity", []), ("gzip, chunked", ["gzip"]),
     ("deflate,chunked", ["deflate"]), ("gzip", ["gzip"]), ("x-secret-value, chunked", ["unknown"])],
    ids=["none", "chunked", "chunked-any-case", "identity", "gzip-chunked", "deflate-chunked", "gzip-to-close",
         "unknown-never-echoed"],
)  # fmt: skip
def test_transfer_codings_other_than_chunked_are_not_scanned(transfer_encoding: str, codings: list[str]) -> None:
    assert unscanned_transfer_codings(transfer_encoding) == codings


FRAME_SECRET = "sk-frame-0123456789abcdef"
FRAMES = Redactor("svc", [validate_secret(FRAME_SECRET)])
LONG_MARKER = Redactor("a-service-with-a-rather-long-name-" + "x" * 60, [validate_secret(FRAME_SECRET)])


@pytest.mark.parametrize(
    ("redactor", "event", "scrubbed", "count"),
    [
        (FRAMES, wsproto.events.Ping(FRAME_SECRET.encode()), wsproto.events.Ping(b"[REDACTED:svc]"), 1),
        (FRAMES, wsproto.events.Pong(b"k=" + FRAME_SECRET.encode()), wsproto.events.Pong(b"k=[REDACTED:svc]"), 1),
        (FRAMES, wsproto.events.CloseConnection(4001, f"bad {FRAME_SECRET}"),
         wsproto.events.CloseConnection(4001, "bad [REDACTED:svc]"), 1),
        (FRAMES, wsproto.events.CloseConnection(1000), wsproto.events.CloseConnection(1000), 0),
        (FRAMES, wsproto.events.Ping(b"hello"), wsproto.events.Ping(b"hello"), 0),
        (LONG_MARKER, wsproto.events.Ping(FRAME_SECRET.encode() * 4), None, 4),
        (LONG_MARKER, wsproto.events.CloseConnection(1008, FRAME_SECRET * 4), None, 4),
    ],
    ids=["ping", "pong", "close-reason", "close-without-reason", "clean-ping", "ping-cut-to-a-frame",
         "reason-cut-to-a-frame"],
)  # fmt: skip
def test_control_frames_are_scrubbed(
    redactor: Redactor, event: wsproto.events.Event, scrubbed: wsproto.events.Event | None, count: int
) -> None:
    clean, found = scrub_control_frame(event, redactor)
    assert found == count
    if scrubbed is not None:
        assert clean == scrubbed
    match clean:
        case wsproto.events.Ping(payload=payload) | wsproto.events.Pong(payload=payload):
            sent = bytes(payload)
        case wsproto.events.CloseConnection(reason=reason):
            sent = str(reason).encode()
    assert FRAME_SECRET.encode() not in sent and len(sent) <= 125


HALF = len(FRAME_SECRET) // 2


@pytest.mark.parametrize(
    ("messages", "scrubbed", "count"),
    [
        ([f"token {FRAME_SECRET}"], ["token [REDACTED:svc]"], 1),
        ([f"token {FRAME_SECRET[:HALF]}", f"{FRAME_SECRET[HALF:]} end"], ["token [REDACTED:svc]", "[REDACTED:svc] end"],
         2),
        ([FRAME_SECRET[:5], FRAME_SECRET[5:10], FRAME_SECRET[10:]], ["[REDACTED:svc]"] * 3, 3),
        ([f"ends in {FRAME_SECRET[:3]}", f"{FRAME_SECRET[3:]} end"],
         [f"ends in {FRAME_SECRET[:3]}", "[REDACTED:svc] end"], 1),
        (["sk-f", "ine, nothing here"], ["[REDACTED:svc]", "ine, nothing here"], 1),
        (["plain text", '{"a": 1}', "ok"], ["plain text", '{"a": 1}', "ok"], 0),
    ],
    ids=["whole-in-one", "split-in-two", "split-in-three", "short-start-passes-rest-scrubbed",
         "a-long-enough-start-is-scrubbed-even-if-nothing-follows", "clean-messages-untouched"],
)  # fmt: skip
def test_a_secret_split_across_websocket_messages_is_scrubbed(
    messages: list[str], scrubbed: list[str], count: int
) -> None:
    window = MessageWindow(FRAMES)
    results = [window.scrub(message.encode()) for message in messages]
    assert [clean.decode() for clean, _ in results] == scrubbed
    assert sum(found for _, found in results) == count
    assert FRAME_SECRET not in "".join(clean.decode() for clean, _ in results)


def _flow_for(vault: Vault, *, http2: bool = False) -> http.HTTPFlow:
    from mitmproxy.test import tflow

    from clavis_mcp.addons.flowmeta import SERVICE
    from tests.conftest import make_service

    vault.add_service(make_service("parts", "api.example.com"), validate_secret(FRAME_SECRET))
    flow = tflow.tflow(resp=True)
    flow.metadata[SERVICE] = "parts"
    if http2:
        flow.request.http_version = "HTTP/2.0"
    return flow


def test_the_reason_phrase_is_scrubbed(vault: Vault) -> None:
    from mitmproxy.test import taddons

    from clavis_mcp.addons.flowmeta import REDACTIONS
    from clavis_mcp.addons.redact import RedactResponse

    flow = _flow_for(vault)
    assert flow.response is not None
    flow.response.reason = f"Invalid API key {FRAME_SECRET}"
    with taddons.context():
        RedactResponse(vault).responseheaders(flow)
    assert flow.response.reason == "Invalid API key [REDACTED:parts]"
    assert flow.metadata[REDACTIONS] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("http2", [True, False], ids=["http2-client-scrubbed", "http1-client-dropped"])
async def test_trailers_are_scrubbed_or_dropped(vault: Vault, http2: bool) -> None:
    from mitmproxy.test import taddons

    from clavis_mcp.addons.redact import RedactResponse

    flow = _flow_for(vault, http2=http2)
    assert flow.response is not None
    flow.response.trailers = http.Headers([(b"grpc-status", b"0"), (b"x-echo", FRAME_SECRET.encode())])
    with taddons.context():
        await RedactResponse(vault).response(flow)
    if http2:
        assert flow.response.trailers is not None
        assert list(flow.response.trailers.fields) == [(b"grpc-status", b"0"), (b"x-echo", b"[REDACTED:parts]")]
    else:
        assert flow.response.trailers is None  # mitmproxy cannot send HTTP/1 trailers; dropped, never forwarded


def test_a_transfer_coding_is_refused_before_the_body_is_read(vault: Vault) -> None:
    from mitmproxy.test import taddons

    from clavis_mcp.addons.flowmeta import DECISION
    from clavis_mcp.addons.redact import RedactResponse

    flow = _flow_for(vault)
    assert flow.response is not None
    flow.response.headers["transfer-encoding"] = "gzip, chunked"
    with taddons.context():
        RedactResponse(vault).responseheaders(flow)
    assert flow.metadata[DECISION] == "refused" and flow.response.status_code == 502
    stream = flow.response.stream
    assert callable(stream)
    assert stream(b"\x1f\x8b upstream bytes") == []  # read and dropped as they come
    assert stream(b"") == [flow.response.content]  # the refusal's text ends the body


@pytest.mark.anyio
@pytest.mark.parametrize("upgrade", ["tcp", "h2c", "websocket"])
async def test_a_switch_to_any_protocol_but_websocket_is_refused(vault: Vault, upgrade: str) -> None:
    """mitmproxy sets ``flow.websocket`` before the response hook only for a WebSocket it relays."""
    from mitmproxy.test import taddons

    from clavis_mcp.addons.flowmeta import REASON
    from clavis_mcp.addons.redact import RedactResponse

    flow = _flow_for(vault)
    assert flow.response is not None
    flow.response.status_code = 101
    flow.response.headers["upgrade"] = upgrade
    with taddons.context():
        await RedactResponse(vault).response(flow)
    assert flow.response.status_code == 502
    assert "only WebSocket upgrades are relayed" in str(flow.metadata[REASON])


@pytest.mark.anyio
async def test_control_frames_from_a_services_websocket_upstream_are_scrubbed(vault: Vault) -> None:
    """The response hook of a WebSocket ``101`` registers the scrubber the engine's connection uses."""
    from mitmproxy.proxy.layers import websocket
    from mitmproxy.test import taddons, tflow

    from clavis_mcp.addons.flowmeta import REDACTIONS, SERVICE
    from clavis_mcp.addons.redact import RedactResponse
    from tests.conftest import make_service

    vault.add_service(make_service("ws", "api.example.com"), validate_secret(FRAME_SECRET))
    addon = RedactResponse(vault)
    flow = tflow.twebsocketflow()
    flow.metadata[SERVICE] = "ws"
    with taddons.context():
        await addon.response(flow)
    engine_side = websocket.WebsocketConnection(wsproto.ConnectionType.CLIENT, conn=flow.server_conn)
    upstream = wsproto.Connection(wsproto.ConnectionType.SERVER)
    engine_side.receive_data(upstream.send(wsproto.events.Ping(FRAME_SECRET.encode())))
    engine_side.receive_data(upstream.send(wsproto.events.CloseConnection(4001, f"bad key {FRAME_SECRET}")))
    assert list(engine_side.events()) == [
        wsproto.events.Ping(b"[REDACTED:ws]"),
        wsproto.events.CloseConnection(4001, "bad key [REDACTED:ws]"),
    ]
    assert flow.metadata[REDACTIONS] == 2


def test_the_engines_error_text_is_withheld_and_scrubbed_before_the_audit_reads_it(vault: Vault) -> None:
    from mitmproxy import flow as mflow
    from mitmproxy.test import taddons

    from clavis_mcp.addons.redact import RedactResponse

    flow = _flow_for(vault)
    addon = RedactResponse(vault)
    with taddons.context():
        flow.error = mflow.Error(f"Cannot parse HTTP response: Bad HTTP response line: b'HTTP/1.1 2x0 {FRAME_SECRET}'")
        addon.error(flow)
        assert flow.error.msg == "Cannot parse HTTP response: Bad HTTP response line: [bytes withheld]"
        flow.error = mflow.Error(f"upstream said {FRAME_SECRET} unquoted")
        addon.error(flow)
        assert flow.error.msg == "upstream said [REDACTED:parts] unquoted"


@pytest.mark.parametrize(
    ("body", "starts"),
    [(b'{"a": "plain"}', 0), (b"\\u0041%41&#65;\x00", 4), (b"%2541" * 3, 3), (b"a\x00\x00b", 2), (b"", 0)],
    ids=["none", "one-of-each-kind", "nested-percent-counts-once", "each-nul-counts", "empty"],
)
def test_escape_starts_bound_the_escapes_a_decoded_view_undoes(body: bytes, starts: int) -> None:
    from clavis_mcp.vault.redaction.views import escape_starts

    assert escape_starts(body) == starts


@pytest.mark.parametrize(
    ("encoding", "raw", "small"),
    [("", b"x" * 100, True), ("", b"x" * 101, False), ("gzip", gzip.compress(b"x" * 100), True),
     ("br", brotli.compress(b"x" * 101), False), ("br", brotli.compress(b"x" * 10_000_000), False)],
    ids=["identity-at-the-limit", "identity-past-it", "gzip-decoding-to-the-limit", "br-decoding-past-it",
         "bomb-stops-at-the-limit"],
)  # fmt: skip
def test_only_a_body_that_decodes_small_is_scanned_on_the_event_loop(encoding: str, raw: bytes, small: bool) -> None:
    from clavis_mcp.addons.redact import decoded_if_small

    body = decoded_if_small(encoding, raw, 100)
    assert (body is not None) is small
    assert body is None or len(body) == 100


def test_a_large_body_past_the_escape_bound_is_refused_not_scanned() -> None:
    from clavis_mcp.addons.redact import MAX_ESCAPE_STARTS, scrub_whole
    from clavis_mcp.vault.errors import TooManyEscapes

    within = brotli.compress(b"%41" * MAX_ESCAPE_STARTS)
    assert scrub_whole(FRAMES, "br", within, None, 64 << 20)[1] == 0
    with pytest.raises(TooManyEscapes, match=f"holds {MAX_ESCAPE_STARTS + 1} bytes that may begin an escape"):
        scrub_whole(FRAMES, "br", brotli.compress(b"%41" * (MAX_ESCAPE_STARTS + 1)), None, 64 << 20)


def test_a_head_changed_between_the_hooks_is_read_again(vault: Vault) -> None:
    """The body's hook reuses the framing fields its head's hook read only for that very head: a
    Content-Encoding set in between still decodes the body before it is scanned."""
    import asyncio

    from mitmproxy.test import taddons, tflow

    from clavis_mcp.addons.flowmeta import REDACTIONS, SERVICE
    from clavis_mcp.addons.redact import RedactResponse
    from tests.conftest import make_service

    secret = "sk-head-changed-0123456789abcdef"
    vault.add_service(make_service("hc", "api.example.com"), validate_secret(secret))
    addon = RedactResponse(vault)
    body = f'{{"echo": "{secret}"}}'.encode()
    with taddons.context(addon):
        flow = tflow.tflow(resp=True)
        flow.metadata[SERVICE] = "hc"
        assert flow.response is not None
        flow.response.headers = http.Headers(content_type="application/json", content_length=str(len(body)))
        addon.responseheaders(flow)
        flow.response.headers["content-encoding"] = "gzip"
        flow.response.raw_content = gzip.compress(body)
        asyncio.run(addon.response(flow))
        assert flow.response.content == b'{"echo": "[REDACTED:hc]"}'
        assert flow.metadata[REDACTIONS] == 1
