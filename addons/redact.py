"""Response redaction: the service's secret never comes back to the client, in any encoding.

Headers (``Location``, ``Set-Cookie``, ``WWW-Authenticate``, any other) are scrubbed as soon
as they arrive. Bodies are scrubbed after decoding (gzip, deflate, br, zstd). Small bodies of
known length are buffered and scrubbed whole. Server-sent events, bodies above
:data:`STREAM_THRESHOLD` and, for HTTPS_PROXY agents, bodies of unknown length are streamed
through a :class:`~vault.redaction.StreamRedactor` that carries a window across chunks, so
nothing is held in memory but a chunk and the window. A streamed body is sent decoded,
because its redacted length is not known in advance. A body that cannot be decoded is not
passed on (fail closed).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import brotli
import zstandard
from mitmproxy import http

from vault import Vault
from vault.oauth_store import other_secrets
from vault.redaction import Redactor, StreamRedactor

from .flowmeta import BUFFERED, REDACTIONS, SERVICE, flow_snapshot, refuse

STREAM_THRESHOLD = 1024 * 1024
Decoder = Callable[[bytes], bytes]


def should_stream(content_type: str, content_length: str | None, buffered_client: bool) -> bool:
    """Stream server-sent events, large bodies, and unknown lengths unless the client wants them whole."""
    if content_type.split(";")[0].strip().lower() == "text/event-stream":
        return True
    if content_length is None:
        return not buffered_client
    try:
        return int(content_length) > STREAM_THRESHOLD
    except ValueError:
        return True


def scrub_headers(headers: http.Headers, redactor: Redactor) -> int:
    """Scrub every header value in place; return the count. One scan of all values joined finds
    nothing in the usual case, and a value holding a secret would show it in the joined scan too."""
    fields = headers.fields
    if not redactor.redact(b"\n".join(value for _, value in fields))[1]:
        return 0
    cleaned = [(name, *redactor.redact(value)) for name, value in fields]
    headers.fields = tuple((name, value) for name, value, _ in cleaned)
    return sum(count for _, _, count in cleaned)


def has_body(method: str, status: int) -> bool:
    """HEAD answers, 1xx, 204 and 304 never have a body: nothing to stream, nothing to chunk."""
    return method.upper() != "HEAD" and not (100 <= status < 200 or status in (204, 304))


def incremental_decoder(encoding: str) -> Decoder | None:
    """A chunk-by-chunk decoder for ``Content-Encoding``; None if we cannot decode it."""
    match encoding.strip().lower():
        case "" | "identity":
            return lambda chunk: chunk
        case "gzip" | "x-gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
        case "deflate":
            return _deflate_decoder()
        case "br":
            return brotli.Decompressor().process
        case "zstd":
            return zstandard.ZstdDecompressor().decompressobj().decompress
    return None


def _deflate_decoder() -> Decoder:
    """``deflate`` is zlib-wrapped by the standard and raw in practice: accept both, as mitmproxy does."""
    state: dict[str, zlib._Decompress] = {}

    def decode(chunk: bytes) -> bytes:
        if "d" not in state:
            if not chunk:
                return b""
            state["d"] = zlib.decompressobj(zlib.MAX_WBITS if chunk[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        return state["d"].decompress(chunk)

    return decode


class _StreamedBody:
    """The ``flow.response.stream`` callable: decode, scrub, pass on; ``b""`` marks the end."""

    def __init__(self, scrubber: StreamRedactor, decode: Decoder) -> None:
        self.scrubber = scrubber
        self._decode = decode

    def __call__(self, chunk: bytes) -> list[bytes]:
        out = self.scrubber.feed(self._decode(chunk)) if chunk else self.scrubber.flush()
        return [out] if out else []  # an empty chunk would end a chunked HTTP/1.1 body early


class RedactResponse:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: dict[tuple[str, str], Redactor] = {}

    def redactor_for(self, flow: http.HTTPFlow, name: str) -> Redactor:
        """The redactor for the secret this flow carried (and the service's other secrets)."""
        snapshot = flow_snapshot(flow, self._vault)
        service = snapshot.service(name)
        secret = snapshot.secrets[name]
        key = (name, secret.fingerprint)
        redactor = self._cache.get(key)
        if redactor is None:
            derived = []
            if service.auth.header_name:
                derived.append(service.auth.header_value(secret))
            redactor = Redactor(name, [secret, *other_secrets(self._vault, name)], derived)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != name}
            self._cache[key] = redactor
        return redactor

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        response = flow.response
        if name is None or response is None:
            return
        redactor = self.redactor_for(flow, name)
        flow.metadata[REDACTIONS] = scrub_headers(response.headers, redactor)
        headers = response.headers
        if not has_body(flow.request.method, response.status_code):
            return
        if not should_stream(
            headers.get("content-type", ""), headers.get("content-length"), flow.metadata.get(BUFFERED, False)
        ):
            return
        decode = incremental_decoder(headers.get("content-encoding", ""))
        if decode is None:
            return  # left buffered: the response hook refuses what it cannot decode
        headers.pop("content-encoding", None)
        headers.pop("content-length", None)
        if response.http_version == "HTTP/1.1" and flow.client_conn.alpn != b"h2":
            headers["transfer-encoding"] = "chunked"
        response.stream = _StreamedBody(redactor.stream(), decode)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """A WebSocket opened with a credential: each message from the server is scrubbed whole
        (a secret split across two messages is not caught: messages are not a byte stream)."""
        name = flow.metadata.get(SERVICE)
        if name is None or flow.websocket is None:
            return
        message = flow.websocket.messages[-1]
        if message.from_client:
            return
        clean, count = self.redactor_for(flow, name).redact(message.content)
        if count:
            message.content = clean
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count

    def response(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        response = flow.response
        if name is None or response is None:
            return
        if isinstance(response.stream, _StreamedBody):
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + response.stream.scrubber.count
            return
        if REDACTIONS not in flow.metadata:
            self.responseheaders(flow)  # a response made by an addon never went through responseheaders
        redactor = self.redactor_for(flow, name)
        try:
            body = response.get_content(strict=True)
        except ValueError:
            encoding = response.headers.get("content-encoding", "")
            refuse(flow, 502, f"the upstream answered with a body clavis-mcp cannot decode ({encoding}); withheld")
            return
        if body:
            clean_body, count = redactor.redact(body)
            if count:
                flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count
                response.set_content(clean_body)
