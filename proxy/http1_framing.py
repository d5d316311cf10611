"""HTTP/1.1 framing for the base-URL front: pure decisions on heads and header fields.

Kept apart from the front's I/O (:mod:`.base_url_front`) so each rule is a function a table can
test: the smuggling shapes h11 would tolerate, a response framed two ways, which fields are the
connection's own (in any spelling a server reads as the same name), and the texts of the
answers and failures the front writes itself, which never quote upstream bytes.
"""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import Iterable, Sequence
from typing import Protocol

from mitmproxy.net.http import status_codes

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
     b"content-length", b"expect", b"proxy-authenticate", b"proxy-authorization"}
)  # fmt: skip
FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding"})  # h11 framed the body by them
FRAMING = re.compile(rb"\n(content-length|transfer-encoding)[ \t]*:", re.IGNORECASE)  # h11 takes bare LF
HEAD_END = re.compile(rb"\r?\n\r?\n")
_CR, _LF, _NUL = b"\r\n\0"  # as ints: a byte's presence is found faster than a one-byte string's


def smuggling_shape(head: bytes) -> str | None:
    """Why a request head is refused before it is read: h11's rules (:mod:`.http1_messages`) merge
    equal duplicate lengths and let ``Transfer-Encoding`` override ``Content-Length``, where an
    upstream may read otherwise."""
    end = HEAD_END.search(head)
    return framing_shape([m.lower() for m in FRAMING.findall(head, 0, end.end() if end else len(head))])


def framing_shape(names: Sequence[bytes]) -> str | None:
    """:func:`smuggling_shape` of a head whose framing fields are ``names`` (lower-case)."""
    if names.count(b"content-length") > 1:
        return "more than one Content-Length header"
    if b"content-length" in names and b"transfer-encoding" in names:
        return "both Content-Length and Transfer-Encoding"
    return None


class _Head(Protocol):
    @property
    def headers(self) -> Iterable[tuple[bytes, bytes]]: ...  # lower-case names, as h11's ``Response``


def response_framing(head: _Head) -> str | None:
    """A response head framed two ways (h11 lets ``Transfer-Encoding`` win, as mitmproxy refuses)."""
    names = [name for name, _ in head.headers]
    if b"transfer-encoding" in names and b"content-length" in names:
        return "both Content-Length and Transfer-Encoding"
    return None


def without_hop_by_hop(fields: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``fields`` without the connection's own headers (and those its ``Connection`` names), and
    without any field a CR, LF or NUL would split."""
    named = {name_key(t.strip()) for n, v in fields if name_key(n) == b"connection" for t in v.split(b",")}
    return [
        (n, v)
        for n, v in fields
        if (key := name_key(n)) not in HOP_BY_HOP
        and key not in named
        and _CR not in v
        and _LF not in v
        and _NUL not in v
    ]


def without_connection_named(fields: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An upstream head without ``Connection`` and what it names, before the stages see it: named
    at send time, a name would also remove the headers our stages add (``X-Clavis-Audit-Id``)."""
    named = {name_key(t.strip()) for n, v in fields if name_key(n) == b"connection" for t in v.split(b",")}
    named = (named | {b"connection"}) - FRAMING_NAMES
    return [(n, v) for n, v in fields if name_key(n) not in named]


@functools.lru_cache(maxsize=512)  # a client sends the same names request after request
def name_key(name: bytes) -> bytes:
    """A header name as servers that read ``_`` or ``.`` as ``-`` see it (``Transfer_Encoding``,
    ``Keep-Alive_``), as :func:`~clavis_mcp.vault.proxy_headers.header_key` compares names."""
    return re.sub(rb"[-_.]+", b"-", name.lower()).strip(b"-")


def connect_failure(host: str, port: int, exc: BaseException) -> str:
    """A failed dial in the audit's words (``addons/failures.py``), naming what to check."""
    where = f"{host}:{port}"
    match exc:
        case ssl.SSLCertVerificationError():
            return f"TLS certificate of {where} not trusted: {exc.verify_message}"
        case ssl.SSLError():
            return f"TLS handshake with {where} failed ({exc.reason})"
        case ConnectionRefusedError():
            return f"cannot connect to {where}: connection refused"
        case TimeoutError():
            return f"cannot connect to {where}: timed out"
        case OSError():
            return f"cannot connect to {where}: {exc.strerror or type(exc).__name__}"
    return f"cannot connect to {where}: {type(exc).__name__}"


def bare_parts(status: int, text: str) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """The reason phrase, header fields and body of an answer of ours that no stage made."""
    body = f"{text}\n".encode()
    fields = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"%d" % len(body))]
    return status_codes.RESPONSES.get(status, "Error").encode(), fields, body


def bare_answer(status: int, text: str) -> bytes:
    """A whole answer of ours, closing the connection: no stage made it."""
    reason, fields, body = bare_parts(status, text)
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason) + b"".join(n + b": " + v + b"\r\n" for n, v in fields)
    return head + b"Connection: close\r\n\r\n" + body
