"""Response redaction: the service's secret never comes back to the client, in any encoding.

Headers (``Location``, ``Set-Cookie``, ``WWW-Authenticate``, any other) are scrubbed as soon
as they arrive. Bodies are scrubbed after decoding (gzip, deflate, br, zstd). Small bodies of
known length are buffered and scrubbed whole, as bytes and as their readers decode them
(:mod:`vault.redaction_views`), whatever their declared type: ``requests``' ``resp.json()``
ignores ``Content-Type`` and detects UTF-16/32 itself. Server-sent events, bodies above
:data:`STREAM_THRESHOLD` and, for HTTPS_PROXY agents, bodies of unknown length are streamed
through a :class:`~vault.redaction.StreamRedactor` that carries a window across chunks, so
nothing is held in memory but a chunk and the window. A streamed text body whose first bytes show
UTF-16 or UTF-32 (a BOM or the NULs of ASCII text, as JSON readers detect it) is scanned as UTF-8
and sent back in its own encoding (:class:`_Transcoded`). A streamed body, and a buffered one that
was scrubbed, is sent decoded. A body that cannot be decoded is not passed on (fail closed).

The work on a buffered body is bounded, because the event loop it would run on also carries
every other flow and the MCP server. A body that decodes to more than :data:`INLINE_SCAN_MAX`
bytes is decoded and scanned in a worker thread (a kilobyte of brotli can decode to 64 MiB of
escapes, whose decoded views cost seconds), and one with more than :data:`MAX_ESCAPE_STARTS`
bytes that could begin an escape is refused rather than scanned.

Every other part of a response is in scope too: the reason phrase, header names (a name that
holds a secret is dropped), trailers (scrubbed for HTTP/2 clients, dropped for HTTP/1 ones, which
mitmproxy cannot send them to), WebSocket messages and control frames (:mod:`.engine_gaps`). What
cannot be scanned is refused: a transfer coding other than chunked, and a ``101`` to any protocol
but WebSocket, after which the engine would relay raw bytes no hook sees.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import functools
import weakref
from collections.abc import Callable

import wsproto.events
from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.audit.log import ERROR
from clavis_mcp.vault.errors import DecodedTooLarge, DecodeError, TooManyEscapes
from clavis_mcp.vault.redaction.content_types import declared_charset, is_text
from clavis_mcp.vault.redaction.decoding import (
    DEFAULT_MAX_DECODED,
    MAX_DECODED_ENV,
    BoundedDecoder,
    decode_body,
    is_identity,
    max_decoded_from_env,
)
from clavis_mcp.vault.redaction.redactor import Redactor, StreamRedactor
from clavis_mcp.vault.redaction.service import ServiceRedactor, ServiceRedactors
from clavis_mcp.vault.redaction.views import ESCAPE_INTRODUCERS, escape_starts, redact_decoded, text_encodings

from .engine_gaps import install, scrub_control_frames, without_quoted_bytes
from .flowmeta import DECISION, REASON, REDACTIONS, SERVICE, flow_snapshot, refuse
from .header_fields import drop_headers, header_values, set_identity_body

STREAM_THRESHOLD = 1024 * 1024
CONTENT_TYPE, CONTENT_LENGTH = b"content-type", b"content-length"
CONTENT_ENCODING, TRANSFER_ENCODING = b"content-encoding", b"transfer-encoding"
FRAMING = (TRANSFER_ENCODING, CONTENT_TYPE, CONTENT_LENGTH, CONTENT_ENCODING)  # what the hooks read of a head
Decoder = Callable[[bytes], bytes]
SPLIT_PREFIX_MIN = 4  # a WebSocket message ending with this much of the start of a form has it replaced
CONTROL_PAYLOAD_MAX = 125  # RFC 6455 5.5: a control frame's payload; a close reason has 2 bytes less
SCANNED_TRANSFER_CODINGS = frozenset({"", "chunked", "identity"})
KNOWN_TRANSFER_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "compress", "x-compress"})
INLINE_SCAN_MAX = 32 * 1024  # decoded bytes scanned on the event loop: milliseconds, even if all are escapes
# A body sent as it is, without any byte that could begin an escape, is scanned as bytes only: up to
# this many on the event loop too (0.2 ms per MiB with Hyperscan, 5 ms with re, 36 ms for a MiB that
# is all secrets), where a worker thread would cost more than the scan.
INLINE_PLAIN_MAX = STREAM_THRESHOLD
MAX_ESCAPE_STARTS = STREAM_THRESHOLD  # no uncompressed body of known length that is buffered holds more


def decoded_if_small(encoding: str, raw: bytes, limit: int) -> bytes | None:
    """``raw`` decoded if that gives at most ``limit`` bytes; None if more (decoding stops past ``limit``)."""
    if len(raw) > limit:
        return None
    try:
        return decode_body(encoding, raw, limit)
    except DecodedTooLarge:
        return None


def _plain(encoding: str, raw: bytes, charset: str | None, limit: int) -> bool:
    """Whether ``raw`` is at most ``limit`` bytes sent as they are, none of which could begin an escape,
    in no text encoding but UTF-8's family (no transcoding: a decoder may cost far more than the scan)."""
    if not is_identity(encoding) or len(raw) > limit or any(i in raw for i in ESCAPE_INTRODUCERS):
        return False
    return not text_encodings(raw, charset)


def scrub_whole(
    redactor: Redactor, encoding: str, raw: bytes, charset: str | None, max_decoded: int
) -> tuple[bytes, int]:
    """A body decoded and scrubbed whole within both bounds (``max_decoded`` bytes, :data:`MAX_ESCAPE_STARTS`
    escapes): what a worker thread does with a large body."""
    body = decode_body(encoding, raw, max_decoded)
    if len(body) > MAX_ESCAPE_STARTS and (starts := escape_starts(body)) > MAX_ESCAPE_STARTS:
        raise TooManyEscapes(starts, MAX_ESCAPE_STARTS)  # (a shorter body cannot hold more: it is not counted)
    return redact_decoded(redactor, body, charset)


def should_stream(content_type: str, content_length: str | None) -> bool:
    """Stream server-sent events, large bodies and unknown lengths, for every client: call_service's
    audit record reaches the gateway in process, not in headers, and a body of unknown length held
    whole could be endless (issue 20.8)."""
    if content_type.split(";")[0].strip().lower() == "text/event-stream":
        return True
    if content_length is None:
        return True
    try:
        return int(content_length) > STREAM_THRESHOLD
    except ValueError:
        return True


def scrub_headers(headers: http.Headers, redactor: Redactor, names: Redactor | None = None) -> int:
    """Scrub every header value in place and drop every field whose name holds a secret (a marker
    is no valid name, and such a field carries nothing a client needs); return the count.

    ``names`` holds the secrets in lower case: a name's case means nothing, and an HTTP/2 hop
    lower-cases it, so a name is judged in lower case as well. It holds every form of ``redactor``
    in lower case too (:class:`~vault.redaction.service.ServiceRedactor`), so one scan of all names
    and values joined and lower-cased finds nothing in the usual case, and would find any form
    either redactor finds in a field: the fields are then judged one by one, as before. A name or
    value shorter than every form holds none, and is left out of that scan (most are, in a small
    response's head: then there is no scan at all, which costs more than the rest of the head's work)."""
    fields = headers.fields
    scan = names if names is not None else redactor
    joined = b"\n".join([part for field in fields for part in field if len(part) >= scan.shortest])
    if not joined or not scan.redact(joined.lower() if names is not None else joined)[1]:
        return 0
    kept, count = [], 0
    for name, value in fields:
        if redactor.redact(name)[1] or (names is not None and names.redact(name.lower())[1]):
            count += 1
            continue
        clean, found = redactor.redact(value)
        kept.append((name, clean))
        count += found
    headers.fields = tuple(kept)
    return count


def unscanned_transfer_codings(transfer_encoding: str) -> list[str]:
    """The transfer codings besides chunked: a body under one is compressed on the wire without a
    Content-Encoding, so a scan sees no secret that a client undoing the coding would. Names
    outside the registry come back as ``unknown`` (a refusal reason never echoes upstream text)."""
    codings = (coding.strip().lower() for coding in transfer_encoding.split(","))
    return [c if c in KNOWN_TRANSFER_CODINGS else "unknown" for c in codings if c not in SCANNED_TRANSFER_CODINGS]


def scrub_control_frame(event: wsproto.events.Event, redactor: Redactor) -> tuple[wsproto.events.Event, int]:
    """A ping or pong payload, or a close reason, scrubbed whole (each fits in one frame), cut to
    what a control frame may carry if the marker made it longer."""
    match event:
        case wsproto.events.Ping() | wsproto.events.Pong():
            payload, count = redactor.redact(bytes(event.payload))
            return (dataclasses.replace(event, payload=payload[:CONTROL_PAYLOAD_MAX]), count) if count else (event, 0)
        case wsproto.events.CloseConnection(reason=str(reason)):
            text, count = redactor.redact_text(reason)
            if not count:
                return event, 0
            fitted = text.encode()[: CONTROL_PAYLOAD_MAX - 2].decode("utf-8", "ignore")
            return dataclasses.replace(event, reason=fitted), count
    return event, 0


class MessageWindow:
    """Scrubs the messages of one direction of a WebSocket as one stream, passing each on at once.

    A body's chunks are one byte stream, so :class:`StreamRedactor` holds back a chunk's end that
    could begin a secret. Messages are units an application reads one by one: holding back the end
    of one would move bytes into the next, and hold a reply the client waits for. So each message
    is passed on whole, scrubbed with the end of the messages before it in view: the rest of a
    secret begun in an earlier message is replaced, and so are the last bytes of a message when
    they are the first :data:`SPLIT_PREFIX_MIN` or more bytes of some form. A reader piecing the
    messages together finds at most ``SPLIT_PREFIX_MIN - 1`` bytes of a form, where
    :class:`StreamRedactor` leaves none.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._before = b""  # the end of the earlier messages as they arrived: the longest form less a byte

    def scrub(self, message: bytes) -> tuple[bytes, int]:
        redactor, offset = self._redactor, len(self._before)
        data = self._before + message
        self._before = data[-(redactor.longest - 1) :] if redactor.longest > 1 else b""
        if redactor.scanner is None:
            return message, 0
        spans = redactor.scanner.spans(data)
        begun = redactor.held_back(data[spans[-1][1] if spans else 0 :])
        if begun >= SPLIT_PREFIX_MIN:
            spans.append((len(data) - begun, len(data)))
        here = [(max(start, offset) - offset, end - offset) for start, end in spans if end > offset]
        parts: list[bytes] = []
        emitted = 0
        for start, end in here:
            parts += (message[emitted:start], redactor.marker)
            emitted = end
        parts.append(message[emitted:])
        return b"".join(parts), len(here)


def scrub_reason(response: http.Response, redactor: Redactor) -> int:
    """Scrub the reason phrase (``401 Invalid API key sk-…``) in place; return the count."""
    clean, count = redactor.redact(response.data.reason)
    if count:
        response.data.reason = clean
    return count


def has_body(method: str, status: int) -> bool:
    """HEAD answers, 1xx, 204 and 304 never have a body: nothing to stream, nothing to chunk."""
    return method.upper() != "HEAD" and not (100 <= status < 200 or status in (204, 304))


def incremental_decoder(encoding: str, limit: int = DEFAULT_MAX_DECODED) -> Decoder | None:
    """A chunk-by-chunk decoder for ``Content-Encoding``; None if we cannot decode it.

    No chunk decodes to more than ``limit`` bytes (:class:`~vault.decoding.DecodedTooLarge`):
    mitmproxy sends what one read decoded to before it reads again, so this is the bound on
    what a bomb can put in memory. ``b""`` ends the body, and raises if it was cut short."""
    if is_identity(encoding):
        return functools.partial(_as_sent, limit=limit)
    try:
        decoder = BoundedDecoder(encoding)
    except DecodeError:
        return None

    def decode(chunk: bytes) -> bytes:
        if not chunk:
            decoder.finish()
            return b""
        return b"".join(decoder.decode(chunk, limit))

    return decode


def _as_sent(chunk: bytes, limit: int) -> bytes:
    """An identity body's chunk, within the same bound a decoder keeps (every chunk of an event stream)."""
    if len(chunk) > limit:
        raise DecodedTooLarge("identity", limit)
    return chunk


def wide_encoding(head: bytes) -> str | None:
    """The UTF-16/32 codec the first four bytes of a text show (BOM, else where ASCII's NULs are:
    RFC 4627 §3, what ``json.detect_encoding`` and ``requests`` do), or None for an 8-bit text."""
    for bom, name in ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
                      (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):  # fmt: skip
        if head.startswith(bom):
            return name
    if len(head) < 4 or all(head[:4]):
        return None
    if not head[0]:
        return "utf-16-be" if head[1] else "utf-32-be"
    return "utf-16-le" if head[2] or head[3] else "utf-32-le"


class _Transcoded:
    """A streamed text body scanned in UTF-8 whatever its first bytes show, and sent in its own
    encoding: the listed spellings are UTF-8 bytes, and readers of JSON detect UTF-16/32 by
    themselves. Lossless for valid text (lone surrogates kept); invalid text raises DecodeError."""

    HEAD = 4  # bytes that show the encoding; held until they have all come

    def __init__(self, scrubber: StreamRedactor) -> None:
        self.scrubber = scrubber
        self._head: bytes | None = b""
        self._encoding: str | None = None
        self._codecs: tuple[codecs.IncrementalDecoder, codecs.IncrementalDecoder, codecs.IncrementalEncoder] | None
        self._codecs = None

    @property
    def count(self) -> int:
        return self.scrubber.count

    def feed(self, data: bytes) -> bytes:
        if self._head is not None:
            data, self._head = self._head + data, None
            if len(data) < self.HEAD:
                self._head = data
                return b""
            self._start(wide_encoding(data))
        return self._through(data, final=False)

    def flush(self) -> bytes:
        data, self._head = self._head or b"", None
        return self._through(data, final=True)

    def _start(self, encoding: str | None) -> None:
        if encoding is not None:
            self._encoding = encoding
            wide, utf8 = codecs.getincrementaldecoder(encoding), codecs.getincrementaldecoder("utf-8")
            self._codecs = (
                wide("surrogatepass"),
                utf8("surrogatepass"),
                codecs.getincrementalencoder(encoding)("surrogatepass"),
            )

    def _through(self, data: bytes, final: bool) -> bytes:
        if self._codecs is None:
            return self.scrubber.feed(data) + (self.scrubber.flush() if final else b"")
        wide, utf8, encoder = self._codecs
        try:
            out = self.scrubber.feed(wide.decode(data, final).encode("utf-8", "surrogatepass"))
            out += self.scrubber.flush() if final else b""
            return encoder.encode(utf8.decode(out, final), final)
        except UnicodeError as exc:
            raise DecodeError(f"the body is not the {self._encoding} text its first bytes show") from exc


type Scrubber = StreamRedactor | _Transcoded


class _StreamedBody:
    """The ``flow.response.stream`` callable: decode, scrub, pass on; ``b""`` marks the end.

    A chunk that cannot be decoded, or decodes past the bound, ends what is passed on: the rest
    is read and dropped, and the response hook cuts the connection, so the client sees a broken
    body rather than a short one that looks whole (the headers have gone: no refusal can)."""

    def __init__(self, scrubber: Scrubber, decode: Decoder) -> None:
        self.scrubber = scrubber
        self._decode = decode
        self.failure: str | None = None
        self.sent_bytes = 0  # what the client was sent, for the audit record

    def __call__(self, chunk: bytes) -> list[bytes]:
        if self.failure is not None:
            return []
        try:
            out = self.scrubber.feed(self._decode(chunk)) if chunk else self._end()
        except DecodeError as exc:
            self.failure = str(exc)  # the window held back is dropped with it: no part of a secret leaves
            return []
        self.sent_bytes += len(out)
        return [out] if out else []  # an empty chunk would end a chunked HTTP/1.1 body early

    def _end(self) -> bytes:
        self._decode(b"")
        return self.scrubber.flush()


class _Withheld:
    """The ``stream`` of a response refused once its headers had arrived: the upstream's body is
    read and dropped as it comes, and the refusal's own text is sent when it ends."""

    def __init__(self, text: bytes) -> None:
        self._text = text

    def __call__(self, chunk: bytes) -> list[bytes]:
        return [] if chunk else [self._text]


def _refuse_before_the_body(flow: http.HTTPFlow, reason: str) -> None:
    """Refuse a response whose headers have arrived: its body is read and dropped, never held."""
    refuse(flow, 502, f"{reason}; withheld")
    if flow.response is not None:
        flow.response.stream = _Withheld(flow.response.get_content() or b"")


class RedactResponse:
    def __init__(self, vault: Vault, max_decoded: int | None = None) -> None:
        """``max_decoded``: the most a buffered body, or one read of a streamed one, may decode to
        (``CLAVIS_MAX_DECODED_BYTES``, 64 MiB by default)."""
        install()  # without it the engine relays control frames, trailers and upgraded bytes past every hook
        self._vault = vault
        self._max_decoded = max_decoded_from_env() if max_decoded is None else max_decoded
        self._redactors = ServiceRedactors(vault)
        self._windows: weakref.WeakKeyDictionary[http.HTTPFlow, MessageWindow] = weakref.WeakKeyDictionary()
        # The framing fields read from the last head, with the fields they were read from: the body's
        # hook finds them there when its head is that very tuple (held here, so no other can take
        # its identity), as it is for a sequential exchange whose head nothing changed since.
        self._head: tuple[tuple[tuple[bytes, bytes], ...], dict[bytes, str]] | None = None

    def redactors_for(self, flow: http.HTTPFlow, name: str) -> ServiceRedactor:
        """The redactors for the secret this flow carried (and the service's other secrets)."""
        return self._redactors.for_service(flow_snapshot(flow, self._vault), name)

    def redactor_for(self, flow: http.HTTPFlow, name: str) -> Redactor:
        return self.redactors_for(flow, name).values

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        response = flow.response
        if name is None or response is None:
            return
        redactor, names = self.redactors_for(flow, name)
        flow.metadata[REDACTIONS] = scrub_headers(response.headers, redactor, names) + scrub_reason(response, redactor)
        headers = response.headers
        if not has_body(flow.request.method, response.status_code):
            return
        values = header_values(headers, *FRAMING)
        self._head = (headers.fields, values)
        if TRANSFER_ENCODING in values and (codings := unscanned_transfer_codings(values[TRANSFER_ENCODING])):
            coded = ", ".join(codings)
            _refuse_before_the_body(flow, f"the upstream's body came under a transfer coding not scanned ({coded})")
            return
        if not should_stream(values.get(CONTENT_TYPE, ""), values.get(CONTENT_LENGTH)):
            return
        decode = incremental_decoder(values.get(CONTENT_ENCODING, ""), self._max_decoded)
        if decode is None:
            return  # left buffered: the response hook refuses what it cannot decode
        drop_headers(headers, CONTENT_ENCODING, CONTENT_LENGTH)
        if response.http_version == "HTTP/1.1" and flow.client_conn.alpn != b"h2":
            headers["transfer-encoding"] = "chunked"
        scrubber = redactor.stream()
        content_type = values.get(CONTENT_TYPE, "")
        text = is_text(content_type) and not content_type.lower().startswith("text/event-stream")  # always UTF-8
        response.stream = _StreamedBody(_Transcoded(scrubber) if text else scrubber, decode)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """A WebSocket opened with a credential: each message from the server is scrubbed as it
        comes, with the end of the ones before it in view (:class:`MessageWindow`)."""
        name = flow.metadata.get(SERVICE)
        if name is None or flow.websocket is None:
            return
        message = flow.websocket.messages[-1]
        if message.from_client:
            return
        window = self._windows.get(flow)
        if window is None:
            window = self._windows[flow] = MessageWindow(self.redactor_for(flow, name))
        clean, count = window.scrub(message.content)
        if count:
            message.content = clean
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count

    def _upgrade(self, flow: http.HTTPFlow, redactor: Redactor) -> None:
        """A ``101``: to WebSocket, the upstream's control frames are scrubbed from now on; to any
        other protocol, refused, since the engine would relay its raw bytes past every hook."""
        if flow.websocket is None:
            reason = "the upstream switched to a non-WebSocket protocol, which clavis-mcp cannot scrub"
            refuse(flow, 502, f"{reason}; only WebSocket upgrades are relayed")
            return

        def scrub(event: wsproto.events.Event) -> wsproto.events.Event:
            clean, count = scrub_control_frame(event, redactor)
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count
            return clean

        scrub_control_frames(flow.server_conn, scrub)

    def _trailers(self, flow: http.HTTPFlow, redactors: ServiceRedactor) -> None:
        """Scrub trailers for an HTTP/2 or HTTP/3 client; drop them for an HTTP/1 one (mitmproxy
        cannot send HTTP/1 trailers: it would cut the response short)."""
        response = flow.response
        if response is None or response.trailers is None:
            return
        if flow.request.is_http2 or flow.request.is_http3:
            count = scrub_headers(response.trailers, *redactors)
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count
        else:
            response.trailers = None

    def error(self, flow: http.HTTPFlow) -> None:
        """The engine's error text quotes the bytes it could not parse (a response head cut short, a
        bad status line): the audit record's reason, so withheld, and scrubbed if they slip past."""
        if flow.error is None:
            return
        text = without_quoted_bytes(flow.error.msg)
        name = flow.metadata.get(SERVICE)
        flow.error.msg = self.redactor_for(flow, name).redact_text(text)[0] if name is not None else text

    async def response(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        response = flow.response
        if name is None or response is None:
            return
        redactors = self.redactors_for(flow, name)
        self._trailers(flow, redactors)
        if isinstance(response.stream, _StreamedBody):
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + response.stream.scrubber.count
            if response.stream.failure is not None:
                flow.metadata[DECISION] = ERROR  # the audit record says the response did not arrive whole
                flow.metadata[REASON] = f"{response.stream.failure}; the rest was withheld and the connection cut"
                if flow.killable:
                    flow.kill()  # mitmproxy resets the client's stream instead of ending the body
            return
        if REDACTIONS not in flow.metadata:
            self.responseheaders(flow)  # a response made by an addon never went through responseheaders
        redactor = redactors.values
        if response.status_code == 101:
            self._upgrade(flow, redactor)
            return
        raw = response.raw_content or b""
        if not raw:
            return
        fields, head = response.headers.fields, self._head
        if head is not None and head[0] is fields:
            values = head[1]
        else:
            values = header_values(response.headers, CONTENT_ENCODING, CONTENT_TYPE)
        encoding, charset = values.get(CONTENT_ENCODING, ""), declared_charset(values.get(CONTENT_TYPE, ""))
        try:
            scrubbed = self._scrub_here(redactor, encoding, raw, charset)
            if scrubbed is None:
                scrubbed = await asyncio.to_thread(scrub_whole, redactor, encoding, raw, charset, self._max_decoded)
        except DecodedTooLarge as exc:
            reason = f"{exc} ({len(raw)} bytes as sent), more than clavis-mcp decodes of one response"
            refuse(flow, 502, f"{reason}; withheld. Ask for less, or raise {MAX_DECODED_ENV}")
            return
        except DecodeError as exc:
            refuse(flow, 502, f"the upstream answered with a body clavis-mcp cannot decode: {exc}; withheld")
            return
        except TooManyEscapes as exc:
            refuse(flow, 502, f"{exc}; withheld. Ask for less (a smaller page or range)")
            return
        clean_body, count = scrubbed
        if count:
            flow.metadata[REDACTIONS] = flow.metadata.get(REDACTIONS, 0) + count
            set_identity_body(response, clean_body)  # not re-encoded: 64 MiB would hold the loop again

    def _scrub_here(
        self, redactor: Redactor, encoding: str, raw: bytes, charset: str | None
    ) -> tuple[bytes, int] | None:
        """A body scrubbed as bytes and as its readers decode it, whatever its declared type, on the
        event loop if it decodes to at most :data:`INLINE_SCAN_MAX` bytes; None if it is for a worker
        thread (:func:`scrub_whole`), so that a body of megabytes of escapes holds up no other flow,
        nor the MCP server on the loop. Not a coroutine: nearly every body is scrubbed here."""
        body = decoded_if_small(encoding, raw, min(INLINE_SCAN_MAX, self._max_decoded))
        if body is not None:
            return redact_decoded(redactor, body, charset)
        if _plain(encoding, raw, charset, min(INLINE_PLAIN_MAX, self._max_decoded)):
            return redactor.redact(raw)  # what redact_decoded finds in it, without looking for escapes again
        return None
