"""The base-URL front's HTTP/1.1 client side: a request written, the upstream's response read.

h11 did this job, strictly and correctly, but a fresh ``h11.Connection`` per request (its state
machine, event objects, header normalisation and writer/reader dispatch) cost about a twentieth
of the proxy's CPU per base-URL request, and the in-process path (call_service) paid it too.
This is the same grammar and the same verdicts in one pass (``h11/_abnf.py``, ``_readers.py``,
``_headers.py``): a request h11 would not send is refused (``ValueError``); a response is read
as h11 reads one (obs-fold, bare LF, 1xx skipped, 101 refused, framing by HEAD/204/304, one
``chunked`` or a checked ``Content-Length`` or the connection's close, a head, chunk line or
trailer section still incomplete past 16 KiB refused), and a refusal is worded as the front
worded h11's (:func:`_refusal`), so an agent and the audit read what they read before. A test
holds the two readers equal on random and adversarial responses split at every offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

UPGRADE_REFUSAL = "base-URL mode does not relay protocol upgrades (WebSocket); use MITM mode (HTTPS_PROXY) for them"
INCOMPLETE_MAX = 16 * 1024  # h11's bound on an event (head, chunk line, trailers) still incomplete
LENGTH_DIGITS = 20  # h11's longest Content-Length
END = b""  # what :meth:`ResponseReader.piece` returns at the body's end (a piece is never empty)

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_FIELD_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
# The same at each line's start, up to its end; the value as a run of ``[^\x00\s]`` and blanks that begins and
# ends with the former is the same language, and the regex engine takes it faster.
_FIELD_LINE_END = re.compile(
    rb"^([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*((?:[^\x00\s](?:[^\x00\r\n\x0b\x0c]*[^\x00\s])?)?)[ \t]*\r?\n",
    re.MULTILINE,
)
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(rb"[0-9]+")


class ResponseError(Exception):
    """The upstream's response cannot be relayed; the text is the front's, never upstream bytes."""


def _refusal(h11_words: str) -> ResponseError:
    """h11's complaint in the words the front gave it (upstream bytes h11 quoted go no further)."""
    if "_SWITCH_UPGRADE" in h11_words:  # a 101 to a request that proposed no upgrade
        return ResponseError(f"the upstream switched protocols (101); {UPGRADE_REFUSAL}")
    if "Transfer-Encoding" in h11_words:
        return ResponseError(
            "the upstream's body came under a transfer coding other than chunked, which clavis-mcp does not scan; "
            "refused"
        )
    if "closed" in h11_words:
        return ResponseError("server disconnected: the upstream closed the connection mid-response")
    return ResponseError("bad response: invalid HTTP/1.1 from the upstream (clavis-mcp cannot parse it)")


def request_head(method: bytes, target: bytes, fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The request's head as h11 writes it (``Host`` first); ``ValueError`` where h11 refuses to
    send it. ``fields`` hold no framing field but the caller's own ``Content-Length``."""
    host = b""
    hosts = 0
    lines = []
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise ValueError("a header is malformed")
        if name.lower() == b"host":
            hosts += 1
            host = b"%s: %s\r\n" % (name, value)
        else:
            lines.append(b"%s: %s\r\n" % (name, value))
    if hosts != 1 or not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise ValueError("the method, the target or the Host header is malformed")
    return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, host, b"".join(lines))


class ResponseHead(NamedTuple):
    """A final response's head: ``fields`` as sent (a ``Content-Length`` as h11 normalises it),
    ``headers`` the same with lower-case names."""

    http_version: bytes
    status_code: int
    reason: bytes
    fields: list[tuple[bytes, bytes]]
    headers: list[tuple[bytes, bytes]]


def _fields(block: bytes) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], bytes | None, bool, bool]:
    """Header lines (each ending in LF or CRLF) read as h11 reads them (obs-fold, grammar,
    ``Content-Length`` and ``Transfer-Encoding`` checks): the fields as sent, the same with
    lower-case names, the body's length if one is given, whether it is chunked, whether
    ``Connection`` says ``close``."""
    pairs: list[tuple[bytes, bytes]] = _FIELD_LINE_END.findall(block)
    if len(pairs) != block.count(b"\n"):  # a line that is no field, or a folded one: read line by line
        pairs = [_field(line) for line in _unfolded(block)]
    fields: list[tuple[bytes, bytes]] = []
    headers: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = close = False
    for name, value in pairs:
        key = name.lower()
        if key == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise _refusal("conflicting Content-Length headers")
            value = lengths.pop()
            if not _DIGITS.fullmatch(value) or len(value) > LENGTH_DIGITS:
                raise _refusal("bad Content-Length")
            if length is not None:
                if length != value:
                    raise _refusal("conflicting Content-Length headers")
                continue
            length = value
        elif key == b"transfer-encoding":
            if chunked:
                raise _refusal("multiple Transfer-Encoding headers")
            value = value.lower()
            if value != b"chunked":
                raise _refusal("Only Transfer-Encoding: chunked is supported")
            chunked = True
        elif key == b"connection":
            close = close or b"close" in [token.strip() for token in value.lower().split(b",")]
        fields.append((name, value))
        headers.append((key, value))
    return fields, headers, length, chunked, close


def _unfolded(block: bytes) -> list[bytes]:
    """The block's lines, without their ends, a line that begins with whitespace (obs-fold)
    joined to the one before with one space."""
    lines: list[bytes] = []
    for line in block.split(b"\n")[:-1]:
        if line[-1:] == b"\r":
            line = line[:-1]
        if line[:1] == b" " or line[:1] == b"\t":
            if not lines:
                raise _refusal("continuation line at start of headers")
            lines[-1] += b" " + line.lstrip(b" \t")
        else:
            lines.append(line)
    return lines


def _field(line: bytes) -> tuple[bytes, bytes]:
    match = _FIELD_LINE.fullmatch(line)
    if match is None:
        raise _refusal(f"illegal header line: {bytearray(line)!r}")
    return match[1], match[2]


class ResponseReader:
    """The response to one request, read as bytes arrive (:meth:`feed`): its head, then its body's
    pieces; None from either means it needs more bytes. :attr:`reusable` says, at the end,
    whether the connection may carry another request (h11's rules: a persistent HTTP/1.1 response
    with nothing after it)."""

    def __init__(self, method: bytes) -> None:
        self._method = method
        self._buffer = b""
        self._closed = False
        self._searched = 0  # where the search for a head's end resumes
        self._keep_alive = False
        self._done = False
        self._in_body = False
        self._read = self._switched  # (no body before its head)
        self._remaining = 0  # of a Content-Length body, or of a chunk
        self._discard = b""  # the rest of a chunk's CRLF
        self._trailer = False

    @property
    def reusable(self) -> bool:
        return self._done and self._keep_alive and not self._buffer

    def feed(self, data: bytes) -> None:
        """Bytes read from the upstream; ``b""`` when it closed the connection."""
        if not data:
            self._closed = True
        elif self._buffer:
            self._buffer += data
        else:
            self._buffer = data

    def head(self) -> ResponseHead | None:
        """The final response's head (1xx heads are read and dropped), or None for more bytes."""
        while True:
            section = self._section()
            if section is None:
                if self._buffer and self._buffer[0] < 0x21:
                    raise _refusal("illegal request line")
                self._need()
                return None
            if not section:
                raise _refusal("no response line received")
            cut = section.index(b"\n")
            line = section[: cut - 1] if section[cut - 1 : cut] == b"\r" else section[:cut]
            status_line = _STATUS_LINE.fullmatch(line)
            if status_line is None:
                raise _refusal(f"illegal status line: {bytearray(line)!r}")
            fields, headers, length, chunked, close = _fields(section[cut + 1 :])
            version, status = status_line[1], int(status_line[2])
            if status >= 200:
                head = ResponseHead(version, status, status_line[3] or b"", fields, headers)
                self._frame(head, length, chunked, close)
                return head
            if status < 100:
                raise _refusal(f"InformationalResponse status_code should be in range [100, 200), not {status}")
            if status == 101:
                raise _refusal("Received server _SWITCH_UPGRADE event without a pending proposal")

    def piece(self) -> bytes | None:
        """The body's next piece, :data:`END` at its end, or None for more bytes."""
        data = self._read()
        if data is None:
            self._need()
        elif not data:
            self._done = True
        return data

    def _frame(self, head: ResponseHead, length: bytes | None, chunked: bool, close: bool) -> None:
        """How the body after ``head`` ends, and whether the connection persists, as h11 rules."""
        self._in_body = True
        self._keep_alive = head.http_version >= b"1.1" and not close
        if self._method == b"CONNECT" and 200 <= head.status_code < 300:
            self._read = self._switched
        elif head.status_code in (204, 304) or self._method == b"HEAD":
            self._read = self._by_length
        elif chunked:
            self._read = self._chunked
        elif length is not None:
            self._remaining = int(length)
            self._read = self._by_length
        else:
            self._read = self._to_close

    def _need(self) -> None:
        """Before asking for more bytes: refuse what h11 refuses at that point."""
        if not self._buffer and self._closed:  # (the words' gist is all the front reads of them)
            if self._in_body:
                raise _refusal("peer closed connection without sending complete message body")
            raise _refusal("can't handle event type ConnectionClosed when state=SEND_RESPONSE")
        if len(self._buffer) > INCOMPLETE_MAX:
            raise _refusal("Receive buffer too long")
        if self._closed:
            raise _refusal("peer unexpectedly closed connection")

    def _take(self, count: int) -> bytes | None:
        """At most ``count`` bytes from the buffer; None if it is empty."""
        buffer = self._buffer
        if not buffer:
            return None
        if count >= len(buffer):
            self._buffer = b""
            return buffer
        self._buffer = buffer[count:]
        return buffer[:count]

    def _section(self) -> bytes | None:
        """The lines before the next blank line, each with its LF or CRLF, taken from the buffer
        with that blank line: b"" if the buffer begins with one, None if it holds none yet."""
        buffer = self._buffer
        if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
            self._buffer = buffer[1 if buffer[:1] == b"\n" else 2 :]
            return b""
        end = _BLANK_LINE.search(buffer, self._searched)
        if end is None:
            self._searched = max(0, len(buffer) - 2)
            return None
        self._searched = 0
        self._buffer = buffer[end.end() :]
        return buffer[: end.start() + 1]

    def _switched(self) -> bytes | None:
        """After a 2xx to CONNECT, h11 gives the connection up: nothing may be read as this body."""
        raise ResponseError("bad response: the upstream sent bytes past the end of its response")

    def _by_length(self) -> bytes | None:
        if self._remaining == 0:
            return END
        data = self._take(self._remaining)
        if data is not None:
            self._remaining -= len(data)
        return data

    def _to_close(self) -> bytes | None:
        data = self._take(len(self._buffer))
        if data is None and self._closed:
            return END
        return data

    def _chunked(self) -> bytes | None:
        if self._trailer:
            section = self._section()
            if section is None:
                return None
            _fields(section)  # checked as h11 checks them, then dropped
            return END
        if self._discard:
            data = self._take(len(self._discard))
            if data is None:
                return None
            if data != self._discard[: len(data)]:
                raise _refusal(f"malformed chunk footer: {bytearray(data)!r} (expected {self._discard!r})")
            self._discard = self._discard[len(data) :]
            if self._discard:
                return None
        if self._remaining == 0:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return None
            line = self._take(end + 2)
            assert line is not None
            size = _CHUNK_LINE.fullmatch(line)
            if size is None:
                raise _refusal(f"illegal chunk header: {bytearray(line)!r}")
            self._remaining = int(size[1], 16)
            if self._remaining == 0:
                self._trailer = True
                return self._chunked()
        data = self._take(self._remaining)
        if data is None:
            return None
        self._remaining -= len(data)
        if self._remaining == 0:
            self._discard = b"\r\n"
        return data
