"""HTTP/1.1 messages for the base-URL front, read and written with h11's verdicts in one pass.

h11 did this job, strictly and correctly, but a fresh ``h11.Connection`` per message exchange
(its state machine, event objects, header normalisation, writer and reader dispatch) cost about
a tenth of the proxy's CPU per base-URL request, on both sides, and the in-process path
(call_service) paid the upstream side too. This is the same grammar and the same verdicts
(``h11/_abnf.py``, ``_readers.py``, ``_headers.py``, ``_connection.py``):

- a request h11 would not send upstream is refused (``ValueError``);
- a response is read as h11 reads one (obs-fold, bare LF, 1xx dropped, 101 refused, framing by
  HEAD/204/304, one ``chunked`` or a checked ``Content-Length`` or the connection's close, a
  head, chunk line or trailer section still incomplete past 16 KiB refused), and a refusal says
  which of five things broke (:func:`_refusal`): the front no longer reads a cause out of h11's
  text, where the bytes of a bad line it quoted could change the answer (a header line holding
  "closed" read as a disconnection);
- a client's request head gets h11's verdict and the status h11 hinted (400, 431, 501), its
  body is read by the same chunked and length rules, and what follows it (a pipelined request)
  is left as h11 left it.

Whether a connection may carry another exchange is h11's answer too. Tests hold each reader
equal to h11 on random and adversarial messages split across reads at every offset.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from clavis_mcp.vault.errors import UnreadableMessage

UPGRADE_REFUSAL = "base-URL mode does not relay protocol upgrades (WebSocket); use MITM mode (HTTPS_PROXY) for them"
INCOMPLETE_MAX = 16 * 1024  # h11's bound on an event (head, chunk line, trailers) still incomplete
LENGTH_DIGITS = 20  # h11's longest Content-Length
END = b""  # what :meth:`_MessageReader.piece` returns at the body's end (a piece is never empty)

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
_REQUEST_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(rb"[0-9]+")


BAD = "bad response: invalid HTTP/1.1 from the upstream (clavis-mcp cannot parse it)"
CODING = "the upstream's body came under a transfer coding other than chunked, which clavis-mcp does not scan; refused"
CUT = "server disconnected: the upstream closed the connection mid-response"
SILENT = "server disconnected: the upstream closed the connection without answering"
SWITCHED = f"the upstream switched protocols (101); {UPGRADE_REFUSAL}"


def _refusal(why: str = BAD, status: int = 400) -> UnreadableMessage:
    """A refusal in one of the front's own words (above), chosen by what broke, never by what the
    peer sent: the bytes of a bad line go no further."""
    return UnreadableMessage(why, status)


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


def _fields(
    block: bytes | bytearray,
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], bytes | None, bool, bool]:
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
                raise _refusal()
            value = lengths.pop()
            if not _DIGITS.fullmatch(value) or len(value) > LENGTH_DIGITS:
                raise _refusal()
            if length is not None:
                if length != value:
                    raise _refusal()
                continue
            length = value
        elif key == b"transfer-encoding":
            if chunked:
                raise _refusal(CODING, 501)
            value = value.lower()
            if value != b"chunked":
                raise _refusal(CODING, 501)
            chunked = True
        elif key == b"connection":
            close = close or b"close" in [token.strip() for token in value.lower().split(b",")]
        fields.append((name, value))
        headers.append((key, value))
    return fields, headers, length, chunked, close


def _unfolded(block: bytes | bytearray) -> list[bytes | bytearray]:
    """The block's lines, without their ends, a line that begins with whitespace (obs-fold)
    joined to the one before with one space. A folded line grows in a ``bytearray``, as in h11:
    joined as ``bytes``, each fold copied the whole line so far, and a head of many folds (an
    upstream's, up to a read's 1 MiB when it comes whole) cost quadratic time."""
    lines: list[bytes | bytearray] = []
    for line in block.split(b"\n")[:-1]:
        if line[-1:] == b"\r":
            line = line[:-1]
        if line[:1] == b" " or line[:1] == b"\t":
            if not lines:
                raise _refusal()
            folded = lines[-1]
            if not isinstance(folded, bytearray):
                folded = lines[-1] = bytearray(folded)
            folded += b" "
            folded += line.lstrip(b" \t")
        else:
            lines.append(line)
    return lines


def _field(line: bytes | bytearray) -> tuple[bytes, bytes]:
    match = _FIELD_LINE.fullmatch(line)
    if match is None:
        raise _refusal()
    return match[1], match[2]


class _MessageReader:
    """A message read as bytes arrive (:meth:`feed`): after its head, :meth:`piece` gives its
    body's pieces, None when it needs more bytes, :data:`END` at its end. What is read is taken
    from the buffer by moving an offset, and an incomplete event grows in a ``bytearray``: each
    byte is copied a bounded number of times however the peer cuts its reads (many tiny chunks
    in one read, a long line a byte a read), as in h11."""

    def __init__(self, bound: int) -> None:
        self._bound = bound  # the most bytes an incomplete head, chunk line or trailers may hold
        self._buffer: bytes | bytearray = b""
        self._at = 0  # where the bytes not read yet begin in the buffer
        self._closed = False
        self._searched = 0  # how far past ``_at`` no head's end (or chunk line's end) is to be found
        self._keep_alive = False
        self._done = False
        self._in_body = False
        self._read = self._switched  # (no body before its head)
        self._remaining = 0  # of a Content-Length body, or of a chunk
        self._discard = b""  # the rest of a chunk's CRLF
        self._trailer = False

    def feed(self, data: bytes) -> None:
        """Bytes read from the peer; ``b""`` when it closed the connection."""
        if not data:
            self._closed = True
            return
        buffer, at = self._buffer, self._at
        if at == len(buffer):
            self._buffer, self._at = data, 0
            return
        if isinstance(buffer, bytes):
            buffer = bytearray(memoryview(buffer)[at:])
        else:
            del buffer[:at]  # (a bytearray drops its head without moving the rest)
        buffer += data
        self._buffer, self._at = buffer, 0

    def piece(self) -> bytes | None:
        """The body's next piece, :data:`END` at its end, or None for more bytes."""
        data = self._read()
        if data is None:
            self._need()
        elif not data:
            self._done = True
        return data

    def _frame(self, length: bytes | None, chunked: bool) -> None:
        self._in_body = True
        if chunked:
            self._read = self._chunked
        elif length is not None:
            self._remaining = int(length)
            self._read = self._by_length
        else:
            self._read = self._to_close

    def _head_lines(self) -> tuple[bytes | bytearray, bytes | bytearray] | None:
        """A whole head's first line (without its end) and its header lines; None while it is not
        whole, after refusing what h11 refuses before its end comes."""
        section = self._section()
        if section is None:
            if self._unread() and self._buffer[self._at] < 0x21:
                raise _refusal()
            self._need()
            return None
        if not section:
            raise _refusal()
        cut = section.index(b"\n")
        return section[: cut - 1] if section[cut - 1 : cut] == b"\r" else section[:cut], section[cut + 1 :]

    def _unread(self) -> int:
        return len(self._buffer) - self._at

    def _need(self) -> None:
        """Before asking for more bytes: refuse what h11 refuses at that point."""
        unread = self._unread()
        if not unread and self._closed:
            if self._in_body:
                raise _refusal(CUT)
            raise _refusal(SILENT)
        if unread > self._bound:
            raise _refusal(BAD, 431)
        if self._closed:
            raise _refusal(CUT)

    def _take(self, count: int) -> bytes | None:
        """At most ``count`` bytes from the buffer; None if it holds none."""
        buffer, at = self._buffer, self._at
        end = min(len(buffer), at + count)
        if end == at:
            return None
        if end == len(buffer):
            self._buffer, self._at = b"", 0
            if at == 0 and isinstance(buffer, bytes):
                return buffer
        else:
            self._at = end
        return buffer[at:end] if isinstance(buffer, bytes) else bytes(memoryview(buffer)[at:end])

    def _section(self) -> bytes | bytearray | None:
        """The lines before the next blank line, each with its LF or CRLF, taken from the buffer
        with that blank line: b"" if the buffer begins with one, None if it holds none yet."""
        buffer, at = self._buffer, self._at
        if buffer[at : at + 1] == b"\n" or buffer[at : at + 2] == b"\r\n":
            self._at = at + (1 if buffer[at : at + 1] == b"\n" else 2)
            return b""
        end = _BLANK_LINE.search(buffer, at + self._searched)
        if end is None:
            self._searched = max(0, len(buffer) - at - 2)
            return None
        self._searched = 0
        self._at = end.end()
        return buffer[at : end.start() + 1]

    def _switched(self) -> bytes | None:
        """After a 2xx to CONNECT, h11 gives the connection up: nothing may be read as this body."""
        raise UnreadableMessage("bad response: the upstream sent bytes past the end of its response", 400)

    def _by_length(self) -> bytes | None:
        if self._remaining == 0:
            return END
        data = self._take(self._remaining)
        if data is not None:
            self._remaining -= len(data)
        return data

    def _to_close(self) -> bytes | None:
        data = self._take(self._unread())
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
                raise _refusal()
            self._discard = self._discard[len(data) :]
            if self._discard:
                return None
        if self._remaining == 0:
            end = self._buffer.find(b"\r\n", self._at + self._searched)
            if end < 0:
                self._searched = max(0, self._unread() - 1)
                return None
            self._searched = 0
            line = self._take(end + 2 - self._at)
            assert line is not None
            size = _CHUNK_LINE.fullmatch(line)
            if size is None:
                raise _refusal()
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


class ResponseReader(_MessageReader):
    """The response to one request: its head, then its body's pieces; None from either means it
    needs more bytes. :attr:`reusable` says, at the end, whether the connection may carry another
    request (h11's rules: a persistent HTTP/1.1 response with nothing after it)."""

    def __init__(self, method: bytes) -> None:
        super().__init__(INCOMPLETE_MAX)
        self._method = method

    @property
    def reusable(self) -> bool:
        return self._done and self._keep_alive and not self._unread()

    def head(self) -> ResponseHead | None:
        """The final response's head (1xx heads are read and dropped), or None for more bytes."""
        while True:
            lines = self._head_lines()
            if lines is None:
                return None
            line, block = lines
            status_line = _STATUS_LINE.fullmatch(line)
            if status_line is None:
                raise _refusal()
            fields, headers, length, chunked, close = _fields(block)
            version, status = status_line[1], int(status_line[2])
            if status >= 200:
                self._keep_alive = version >= b"1.1" and not close
                if self._method == b"CONNECT" and 200 <= status < 300:
                    self._in_body = True  # (and _switched reads it)
                elif status in (204, 304) or self._method == b"HEAD":
                    self._frame(b"0", False)
                else:
                    self._frame(length, chunked)
                return ResponseHead(version, status, status_line[3] or b"", fields, headers)
            if status < 100:
                raise _refusal()
            if status == 101:
                raise _refusal(SWITCHED)


class RequestHead(NamedTuple):
    """A client's request head: ``fields`` as sent (a ``Content-Length`` as h11 normalises it)."""

    method: bytes
    target: bytes
    fields: list[tuple[bytes, bytes]]
    http_version: bytes


class RequestReader(_MessageReader):
    """A client's request: its head from what the front read (:meth:`head`), then its body's
    pieces. At the end, :attr:`reusable` says whether the connection may carry another request,
    and :attr:`rest` holds what the client sent after this one."""

    def __init__(self, data: bytes, bound: int) -> None:
        super().__init__(bound)
        self._buffer = data
        self._switching = False

    @property
    def reusable(self) -> bool:
        return self._done and self._keep_alive and not self._switching

    @property
    def rest(self) -> bytes:
        return bytes(self._buffer[self._at :])

    def head(self) -> RequestHead:
        """The request's head; :class:`UnreadableMessage` with h11's hinted status where h11 refuses it
        (or where the head is not whole: cut at the front's bound, 431, else 400)."""
        lines = self._head_lines()
        if lines is None:
            raise _refusal()
        line, block = lines
        request_line = _REQUEST_LINE.fullmatch(line)
        if request_line is None:
            raise _refusal()
        fields, headers, length, chunked, close = _fields(block)
        method, target, version = request_line.groups()
        hosts = [value for key, value in headers if key == b"host"]
        if len(hosts) > 1 or (not hosts and version == b"1.1"):
            raise _refusal()
        self._keep_alive = version >= b"1.1" and not close
        self._switching = method == b"CONNECT" or any(
            part.strip() for key, value in headers if key == b"upgrade" for part in value.split(b",")
        )
        self._frame(length or b"0", chunked)
        return RequestHead(method, target, fields, version)
