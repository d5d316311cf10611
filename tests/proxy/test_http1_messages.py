"""The base-URL front's own HTTP/1.1 (proxy/http1_messages.py) against h11 driven as the front drove
it. Upstream: the same request bytes or the same refusal; for a response split across reads
anywhere, the same head, body pieces, refusal in the front's words and verdict on keeping the
connection. Client: for a request, the same head or the same refused status, the same body
pieces or refusal, the same verdict on keeping the connection and the same bytes after it."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import h11
import pytest

from clavis_mcp.proxy.http1_framing import response_framing, without_hop_by_hop
from clavis_mcp.proxy.http1_messages import (
    BAD,
    CODING,
    CUT,
    INCOMPLETE_MAX,
    SILENT,
    SWITCHED,
    RequestReader,
    ResponseReader,
    request_head,
)
from clavis_mcp.vault.errors import UnreadableMessage

type Trace = list[tuple[object, ...]]

# -- the reference: h11 as proxy/base_url_front.py used it at 4350766 ------------------------------------


def h11_words(exc: h11.RemoteProtocolError, up: h11.Connection) -> str:
    """The front's words for h11's complaint, chosen by the complaint's fixed text, never by the
    peer's bytes h11 quotes in it (an illegal line holding "closed" is still an illegal line)."""
    text = str(exc)
    if text.startswith("Received server _SWITCH_UPGRADE"):
        return SWITCHED
    if text.startswith(("multiple Transfer-Encoding", "Only Transfer-Encoding")):
        return CODING
    if text.startswith("can't handle event type ConnectionClosed"):
        return SILENT
    if text.startswith(("peer closed connection", "peer unexpectedly closed")):
        return CUT
    return BAD


def h11_trace(method: bytes, reads: list[bytes]) -> Trace:
    up = h11.Connection(h11.CLIENT)
    up.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"h")]))
    up.send(h11.EndOfMessage())
    pending = iter(reads)
    trace: Trace = []

    def next_event() -> h11.Event:
        while True:
            try:
                event = up.next_event()
            except h11.RemoteProtocolError as exc:
                raise UnreadableMessage(h11_words(exc, up), 400) from None
            if isinstance(event, h11.Event):
                return event
            if event is h11.PAUSED:
                raise UnreadableMessage("bad response: the upstream sent bytes past the end of its response", 400)
            up.receive_data(next(pending, b""))

    try:
        event = next_event()
        while isinstance(event, h11.InformationalResponse):
            event = next_event()
        assert isinstance(event, h11.Response)
        fields = [(bytes(n), bytes(v)) for n, v in event.headers.raw_items()]
        trace.append(("head", bytes(event.http_version), event.status_code, bytes(event.reason), fields))
        trace.append(("framing", response_framing(event), list(event.headers)))
        while not isinstance(event := next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data)
            trace.append(("data", bytes(event.data)))
        clean = up.our_state is h11.DONE and up.their_state is h11.DONE and not up.trailing_data[0]
        trace.append(("end", clean))
    except UnreadableMessage as exc:
        trace.append(("refused", str(exc)))
    return trace


def our_trace(method: bytes, reads: list[bytes]) -> Trace:
    reader = ResponseReader(method)
    pending = iter(reads)
    trace: Trace = []
    try:
        while (head := reader.head()) is None:
            reader.feed(next(pending, b""))
        trace.append(("head", head.http_version, head.status_code, head.reason, head.fields))
        trace.append(("framing", response_framing(head), head.headers))
        while True:
            while (piece := reader.piece()) is None:
                reader.feed(next(pending, b""))
            if not piece:
                break
            trace.append(("data", piece))
        trace.append(("end", reader.reusable))
    except UnreadableMessage as exc:
        trace.append(("refused", str(exc)))
    return trace


# -- responses, random and adversarial -------------------------------------------------------------------

# each list: the usual, then (after None) the odd, drawn one time in twenty
VERSIONS = [b"1.1", b"1.1", b"1.0", b"2.0", None, b"0.9", b"1", b"11", b"1.x"]
STATUSES = [b"200", b"201", b"204", b"304", b"404", None, b"101", b"199", b"099", b"20", b"2000"]
REASONS = [b" OK", b"", b" ", b" Not\tFound ", b" caf\xc3\xa9", b" \x7f\x80", None, b" a\x00b", b" a\rb", b"OK"]
NAMES = [b"X-A", b"Server", b"Keep-Alive", b"Content-Type", b"Connection", b"Content-Length", b"transfer-encoding",
         None, b"Transfer-Encoding ", b"Bad Name", b"", b"X\x00", b"closed", b"_SWITCH_UPGRADE",
         b"\x0closed"]  # fmt: skip
VALUES = [b"text/plain", b"", b"a\tb", b"\xff", b"close", b"keep-alive, close", b"Close ,x", b"closed", b"5", b"0",
          b"chunked", b"Chunked", None, b"5, 5", b"5,6", b" 7 ", b"abc", b"-1", b"9" * 21, b"gzip", b"gzip, chunked",
          b"a\x00b", b"a\x0bb"]  # fmt: skip
EXTRAS = [b"", b"", b"", b"", None, b"x", b"HTTP/1.1 200 OK\r\n\r\n", b"\r\n"]


def draw[T](rng: random.Random, choices: list[T | None]) -> T:
    cut = choices.index(None)
    pick = choices[rng.randrange(cut + 1, len(choices))] if rng.random() < 0.05 else choices[rng.randrange(cut)]
    assert pick is not None
    return pick


def chunked_body(rng: random.Random, eol: bytes) -> bytes:
    out = b""
    for _ in range(rng.randrange(4)):
        data = rng.randbytes(rng.randrange(1, 40))
        size = b"%x" % len(data) if rng.random() < 0.5 else b"%X" % len(data)
        size = rng.choice([b"0" + size, b"zz", b"1" * 21, b""]) if rng.random() < 0.03 else size
        ext = rng.choice([b";a=b", b"; x", b" ", b";\r", b";\n", b"\t"]) if rng.random() < 0.1 else b""
        end = rng.choice([b"\n", b"xy", b"\r"]) if rng.random() < 0.03 else b"\r\n"
        out += size + ext + b"\r\n" + data + end
    trailers = rng.choice([b"X-T: 1" + eol, b"Transfer-Encoding: gzip" + eol, b"Bad Trailer" + eol,
                           b"Content-Length: 1" + eol + b"Content-Length: 2" + eol, b" fold" + eol])  # fmt: skip
    trailers = trailers if rng.random() < 0.1 else b""
    return out + b"0" + rng.choice([b"", b";e"]) + b"\r\n" + trailers + rng.choice([eol, b"\n", b"\r\n"])


def response(rng: random.Random) -> bytes:
    eol = rng.choice([b"\r\n", b"\r\n", b"\n"])
    heads = b""
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        heads += b"HTTP/1.1 1%02d Info" % rng.choice([0, 3, 2]) + eol + rng.choice([b"", b"X-I: 1" + eol]) + eol
    line = b"HTTP/" + draw(rng, VERSIONS) + b" " + draw(rng, STATUSES) + draw(rng, REASONS)
    if rng.random() < 0.02:
        line = rng.choice([b"", b" HTTP/1.1 200 OK", b"HTTP/1.1  200 OK", b"\x00", b"ICY 200 OK"])
    body = rng.randbytes(rng.choice([0, 1, 5, 12, 40]))
    fields = [b"%s: %s" % (draw(rng, NAMES), draw(rng, VALUES)) for _ in range(rng.randrange(4))]
    framing = rng.random()
    if framing < 0.4:
        fields.append(b"Content-Length: %d" % (len(body) + rng.choice([0, 0, 0, 0, -1, 1])))
    elif framing < 0.8:
        fields.append(rng.choice([b"Transfer-Encoding: chunked", b"transfer-encoding: Chunked"]))
        body = chunked_body(rng, eol)
    elif framing < 0.82:
        fields.append(b"X-Big: " + b"b" * rng.choice([16_000, 17_000, 40_000]))
    elif framing < 0.84:
        fields.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n" % 20_000 + b"c" * 20_000 + b"\r\n0\r\n\r\n" if rng.random() < 0.5 else b"1;" + b"e" * 17_000
    rng.shuffle(fields)
    if rng.random() < 0.05:
        fields.insert(rng.randrange(len(fields) + 1), rng.choice([b" folded", b"\tmore", b"  "]))
    fields = [f.replace(b": ", rng.choice([b":", b":\t", b" : "]), 1) if rng.random() < 0.03 else f for f in fields]
    fields = [f + rng.choice([b" ", b"\t"]) if rng.random() < 0.05 else f for f in fields]
    head = heads + line + eol + b"".join(f + (b"\r\r\n" if rng.random() < 0.01 else eol) for f in fields) + eol
    return head + body + draw(rng, EXTRAS)


def splits(rng: random.Random, data: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(4)))) if len(data) > 1 else []
    if rng.random() < 0.05:
        cuts = list(range(1, len(data)))  # one byte a read
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


METHODS = [b"GET", b"GET", b"POST", b"HEAD", b"CONNECT"]


def test_the_reader_reads_as_h11_on_30000_random_responses_split_at_random() -> None:
    rng = random.Random(17)
    outcomes: dict[str, int] = {}
    for _ in range(30_000):
        method, data = rng.choice(METHODS), response(rng)
        reads = splits(rng, data)
        expected = h11_trace(method, reads)
        assert our_trace(method, reads) == expected, (method, reads)
        outcomes[str(expected[-1][0])] = outcomes.get(str(expected[-1][0]), 0) + 1
    assert outcomes["end"] > 8_000 and outcomes["refused"] > 8_000  # both kinds of verdict are well exercised


ADVERSARIAL = [
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
    (b"GET", b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello"),
    (b"GET", b"HTTP/1.1 200 OK\r\n\r\nread to the close"),
    (
        b"GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    ),
    (b"GET", b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\n\r\n"),
    (
        b"GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    ),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nleft over"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\nServer: x\n folded\n\tagain\nContent-Length: 2\n\nok"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
    (b"CONNECT", b"HTTP/1.1 200 OK\r\n\r\n"),
    (b"CONNECT", b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nBad Line\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nConnection : closed\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nX: \x0closed\x00\r\n\r\n"),
    (b"GET", b""),
    (b"GET", b"\r\nHTTP/1.1 200 OK\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 16_400 + b"\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 16_400 + b"\r\nx\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize(("method", "data"), ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_the_reader_reads_as_h11_whatever_two_reads_the_response_comes_in(method: bytes, data: bytes) -> None:
    for reads in _every_split(data):
        assert our_trace(method, reads) == h11_trace(method, reads), reads


def _every_split(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    step = max(1, len(data) // 200)  # the long heads: every 200th offset, and each side of the bound
    for cut in [*range(1, len(data), step), *range(INCOMPLETE_MAX - 2, min(len(data), INCOMPLETE_MAX + 8))]:
        yield [data[:cut], data[cut:]]
    yield [data[i : i + 1] for i in range(len(data))] if len(data) < 1000 else [data]


# -- requests --------------------------------------------------------------------------------------------

FIELD_NAMES = [b"Host", b"host", b"HOST", b"X-A", b"Accept", b"Authorization", b"Content-Length", b"Connection",
               b"Transfer-Encoding", b"Upgrade", b"X Bad", b"", b"X\x00", b"\xc3\xa9"]  # fmt: skip
FIELD_VALUES = [b"h", b"1", b"a b", b"", b"a\tb", b"\x80", b"close", b"h", b"1", b"a b", b" a", b"a ", b"a\r\nb",
                b"a\x00b", b"\x7f"]  # fmt: skip


def h11_request(method: bytes, target: bytes, fields: list[tuple[bytes, bytes]], body: bytes) -> bytes | None:
    up = h11.Connection(h11.CLIENT)
    try:
        parts = [up.send(h11.Request(method=method, target=target, headers=fields))]
        if body:
            parts.append(up.send(h11.Data(data=body)))
        parts.append(up.send(h11.EndOfMessage()))
    except h11.LocalProtocolError:
        return None
    return b"".join(parts)


def test_a_request_is_written_or_refused_as_h11_does_for_20000_random_heads() -> None:
    rng = random.Random(5)
    sent = 0
    for _ in range(20_000):
        fields = [(rng.choice(FIELD_NAMES), rng.choice(FIELD_VALUES)) for _ in range(rng.randrange(5))]
        if rng.random() < 0.8:
            fields.insert(rng.randrange(len(fields) + 1), (b"Host", b"api.example:443"))
        fields = without_hop_by_hop(fields)  # as the front writes it: its own framing only
        method = rng.choice([b"GET", b"POST", b"M-SEARCH", b"GET", b"POST", b"G T", b""])
        target = rng.choice([b"/v1?a=b", b"*", b"/v1", b"/v1?a=b", b"/a b", b"", b"/\x7f"])
        body = rng.randbytes(rng.choice([0, 0, 3]))
        if body or method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
            fields.append((b"Content-Length", b"%d" % len(body)))
        try:
            ours: bytes | None = request_head(method, target, fields) + body
        except ValueError:
            ours = None
        assert ours == h11_request(method, target, fields, body), (method, target, fields)
        sent += ours is not None
    assert 2_000 < sent < 18_000  # both verdicts well exercised


# -- a client's request, read by the front ---------------------------------------------------------------


def h11_request_trace(bound: int, first: bytes, reads: list[bytes]) -> Trace:
    """h11 as proxy/base_url_front.py used it at 4350766: the head from what the front read first,
    then the body read by ``reads`` (the client sends nothing more after them)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=bound)
    conn.receive_data(first)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return [("refused", exc.error_status_hint)]
    if not isinstance(event, h11.Request):
        return [("refused", 400)]
    fields = [(bytes(n), bytes(v)) for n, v in event.headers.raw_items()]
    trace: Trace = [("head", bytes(event.method), bytes(event.target), fields, bytes(event.http_version))]
    pending = iter(reads)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return [*trace, ("malformed body",)]
        if event is h11.NEED_DATA:
            if (data := next(pending, None)) is None:
                return [*trace, ("waiting",)]
            conn.receive_data(data)
        elif isinstance(event, h11.Data):
            trace.append(("data", bytes(event.data)))
        else:
            return [*trace, ("end", conn.their_state is h11.DONE, bytes(conn.trailing_data[0]))]


def our_request_trace(bound: int, first: bytes, reads: list[bytes]) -> Trace:
    reader = RequestReader(first, bound)
    try:
        head = reader.head()
    except UnreadableMessage as exc:
        return [("refused", exc.status)]
    trace: Trace = [("head", head.method, head.target, head.fields, head.http_version)]
    pending = iter(reads)
    while True:
        try:
            piece = reader.piece()
        except UnreadableMessage:
            return [*trace, ("malformed body",)]
        if piece is None:
            if (data := next(pending, None)) is None:
                return [*trace, ("waiting",)]
            reader.feed(data)
        elif piece:
            trace.append(("data", piece))
        else:
            return [*trace, ("end", reader.reusable, reader.rest)]


R_METHODS = [b"POST", b"GET", b"HEAD", b"PUT", None, b"CONNECT", b"M-SEARCH", b"G\x00T", b""]
R_TARGETS = [b"/s/alpha/v1", b"/s/alpha/v1?a=b%20c", b"*", None, b"/a b", b"", b"/\x7f", b"/\xc3\xa9"]
R_VERSIONS = [b"1.1", b"1.1", b"1.0", None, b"2.0", b"0.9", b"1", b"1.1 ", b"11"]
R_FIELDS = [b"Accept: */*", b"Authorization: Bearer k", b"Connection: keep-alive", b"Connection: close",
            b"Expect: 100-continue", b"Content-Type: application/json", b"X-A: a\tb", None,
            b"Connection: Close, Upgrade", b"Upgrade: websocket", b"Upgrade: , ", b"Upgrade:", b"Host: second",
            b"Content-Length: 3", b"Content-Length: 3, 3", b"Content-Length: 3,4", b"Content-Length: x",
            b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked", b"Transfer-Encoding : chunked", b"Bad Line",
            b" folded", b"X: a\x00b", b"X-Big: " + b"b" * 400]  # fmt: skip


def request(rng: random.Random) -> bytes:
    eol = rng.choice([b"\r\n", b"\r\n", b"\n"])
    version = draw(rng, R_VERSIONS)
    line = draw(rng, R_METHODS) + b" " + draw(rng, R_TARGETS) + b" HTTP/" + version
    fields = [draw(rng, R_FIELDS) for _ in range(rng.randrange(4))]
    if rng.random() < 0.9:
        fields.insert(rng.randrange(len(fields) + 1), rng.choice([b"Host: 127.0.0.1:8899", b"host:127.0.0.1"]))
    body = rng.randbytes(rng.choice([0, 1, 5, 30]))
    framing = rng.random()
    if framing < 0.4:
        fields.append(b"Content-Length: %d" % (len(body) + rng.choice([0, 0, 0, 3])))
    elif framing < 0.8:
        fields.append(rng.choice([b"Transfer-Encoding: chunked", b"transfer-encoding: Chunked"]))
        body = chunked_body(rng, eol)
    rng.shuffle(fields)
    head = line + eol + b"".join(f + eol for f in fields) + eol
    after = rng.choice([b"", b"", b"", b"GET /s/alpha/next HTTP/1.1\r\nHost: h\r\n\r\n", b"\r\n", b"junk"])
    return head + body + after


def test_a_request_is_read_as_h11_reads_it_for_30000_random_requests_split_at_random() -> None:
    rng = random.Random(11)
    verdicts: dict[str, int] = {}
    for _ in range(30_000):
        data, bound = request(rng), rng.choice([64 * 1024, 64 * 1024, 300])
        first, *reads = splits(rng, data)
        end = re.search(rb"\n\r?\n", data)
        if end is not None and rng.random() < 0.7:  # as the front reads it: the head whole, and perhaps more
            cut = end.end() + rng.randrange(8)
            first, reads = data[:cut], splits(rng, data[cut:]) if data[cut:] else []
        expected = h11_request_trace(bound, first, reads)
        assert our_request_trace(bound, first, reads) == expected, (bound, first, reads)
        verdicts[str(expected[-1][0])] = verdicts.get(str(expected[-1][0]), 0) + 1
    assert min(verdicts.values()) > 1_000, verdicts  # every kind of verdict is well exercised


H = b"POST /s/alpha/v1 HTTP/1.1\r\nHost: h\r\n"
ADVERSARIAL_REQUESTS = [
    H + b"Content-Length: 5\r\n\r\nhelloGET /s/alpha/next HTTP/1.1\r\nHost: h\r\n\r\n",
    H + b"Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\nnext",
    H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    H + b"Transfer-Encoding: chunked\r\n\r\n" + b"1;" + b"e" * 500 + b"\r\nx\r\n0\r\n\r\n",
    H + b"Transfer-Encoding: gzip\r\n\r\n",
    H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    H + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    H + b"Content-Length: 2, 3\r\n\r\nok",
    H + b"Connection: close\r\nContent-Length: 2\r\n\r\nok",
    H + b"Upgrade: websocket\r\nContent-Length: 0\r\n\r\n",
    H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /s/alpha/v1 HTTP/1.0\r\n\r\n",
    b"GET /s/alpha/v1 HTTP/1.1\r\n\r\n",
    b"GET /s/alpha/v1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /s/alpha/v1 HTTP/1.1\nHost: h\n folded\n\n",
    b"GET /s/alpha/v1 HTTP/1.1\r\n folded\r\nHost: h\r\n\r\n",
    b"GET /s/alpha/v1 HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * 700 + b"\r\n\r\n",
    b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
]


@pytest.mark.parametrize("data", ADVERSARIAL_REQUESTS, ids=range(len(ADVERSARIAL_REQUESTS)))
@pytest.mark.parametrize("bound", [64 * 1024, 600])
def test_a_request_is_read_as_h11_reads_it_whatever_two_reads_it_comes_in(data: bytes, bound: int) -> None:
    for cut in range(1, len(data) + 1):
        first, rest = data[:cut], data[cut:]
        for reads in ([rest] if rest else [], [rest[i : i + 1] for i in range(len(rest))]):
            assert our_request_trace(bound, first, reads) == h11_request_trace(bound, first, reads), (first, reads)
