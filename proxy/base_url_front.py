"""Base-URL mode without mitmproxy's engine: a lean HTTP/1.1 front that runs the same stages.

A base-URL request is plain HTTP on loopback, so none of the engine's layers (proxy modes, TLS
interception, HTTP/2, the sans-io event machinery) has anything to do; they cost about as much
per request as all our stages together. This front reads the request as h11 reads one (strict:
a smuggling shape is answered 400 and nothing is sent), builds a real ``HTTPFlow`` and runs the
proxy's own :class:`~clavis_mcp.addons.Pipeline` on it, then the config's extra addons, in
mitmproxy's order: ``requestheaders``, the body (bounded), ``request``, ``server_connect`` (the
dial guard checks and pins the address; a test routes names to loopback), the dial,
``responseheaders``, the body streamed through ``flow.response.stream`` or buffered, ``response``;
on failure ``error``. A response a stage set is sent as it is. The stages do not know which front
runs them: the base-URL stage (:mod:`.base_url`) only takes flows this front marks. Both
sides' HTTP/1.1 is :mod:`.http1_messages`: h11's verdicts, held equal to h11's by tests,
without the state machine per request that h11 is (a tenth of the front's CPU per request).

What the engine needed patches for holds here by construction: trailers are never forwarded,
a transfer coding other than chunked is refused, upgrades (WebSocket) are refused (MITM mode
relays them), error texts are ours and never quote upstream bytes, hop-by-hop headers are
dropped both ways (in any spelling a server may read as one: ``Transfer_Encoding``), a response
framed by both a length and chunks is refused. The stages that act between hooks (head timeout,
body bound, draining) reach a flow of this front through :mod:`.stream_events`.

Whatever a client sends costs it a bounded share: a head has ``HEAD_SECONDS`` and ``HEAD_MAX``
bytes, a body pauses at most ``BODY_READ_SECONDS`` and holds at most the body limit, at most
``MAX_CLIENTS`` connections are served at once, and a request a stage answered on its head
(no agent key, say) never has its body read: the answer closes the connection.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mitmproxy import connection, flow, http
from mitmproxy.net.http import url
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.layers.http._events import ErrorCode

from clavis_mcp.addons import Pipeline
from clavis_mcp.addons.flowmeta import CLIENT, DECISION, REASON, REFUSED_HEADER, SERVICE, refuse
from clavis_mcp.addons.redact import STREAM_THRESHOLD, has_body
from clavis_mcp.vault.audit.log import REFUSED
from clavis_mcp.vault.errors import UnreadableMessage

from .base_url import FRONT, MARK, without_key
from .body_limit import limit_bytes, too_large
from .direct_head import framing_of
from .http1_framing import (
    HEAD_END,
    bare_answer,
    bare_parts,
    connect_failure,
    framing_shape,
    response_framing,
    smuggling_shape,
    without_connection_named,
    without_hop_by_hop,
)
from .http1_messages import (
    UPGRADE_REFUSAL,
    RequestReader,
    ResponseHead,
    ResponseReader,
    request_head,
)
from .stream_events import serve_by_front
from .upstream_pool import UPSTREAM_BUFFER, PoolKey, Upstream, UpstreamPool

HEAD_MAX = 64 * 1024
DIRECT_PIECES = 16  # body pieces queued for an in-process caller before the exchange waits for it
IN_PROCESS = ("127.0.0.1", 0)  # the "address" of a caller in this process
READ = 64 * 1024
READ_UPSTREAM = UPSTREAM_BUFFER  # a 1 MiB body in a few reads, not sixteen
IDLE_SECONDS = 300.0  # a client's keep-alive connection waiting for its next request
HEAD_SECONDS = 30.0  # from a head's first byte to its end
BODY_READ_SECONDS = 30.0  # the longest a request body may pause between two reads
MAX_CLIENTS = 512  # client connections served at once; past it a new one is answered 503
LINGER_SECONDS = 2.0  # after an error answer, how long the rest of a refused body is read and dropped
LINGER_BYTES = 8 * 1024 * 1024  # and how much of it at most, before the connection is simply closed
logger = logging.getLogger(__name__)
# What an unreadable head's first line says, when it says it plainly (printable ASCII, bounded).
_REQUEST_LINE = re.compile(rb"([A-Z]{1,20}) ([\x21-\x7e]{1,2048}) HTTP/")


def _refused_field(reason: str) -> tuple[bytes, bytes]:
    """The ``REFUSED_HEADER`` field of a refusal of ours, its value printable ASCII."""
    return REFUSED_HEADER.encode(), re.sub(rb"[^\x20-\x7e]", b"?", reason.encode("ascii", "replace"))


@functools.lru_cache(maxsize=64)
def _authority(host_header: bytes) -> tuple[str, int | None]:
    """The Host header's host and port, as mitmproxy reads an authority. Cached: an agent names
    the proxy the same way in every request, and the reading (IDNA checks) cost as much as the
    rest of building the flow."""
    try:
        return url.parse_authority(host_header.decode("latin-1"), check=False)
    except (ValueError, UnicodeError):
        return "", None


class _Failed(Exception):
    """The flow failed: ``message`` (ours, never upstream bytes) goes to the error hook and the client."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class _ClientGone(Exception):
    pass


def _message[M: (http.Request, http.Response)](kind: type[M], data_kind: type[object], **fields: object) -> M:
    """A request or response with these fields, as its constructor makes it. The constructor
    type-checks every field at run time (about 25 µs a message, twice per request, as much as the
    rest of the front's parsing); the fields here come from :mod:`.http1_messages` with their types
    already right."""
    data = data_kind.__new__(data_kind)
    vars(data).update(fields)
    message = kind.__new__(kind)
    message.data = data  # type: ignore[assignment]
    return message


class BaseUrlServer:
    """Serves base-URL connections handed over by :mod:`.peek`; one task per client connection."""

    def __init__(
        self, pipeline: Pipeline, extra_addons: Sequence[object], pool: UpstreamPool, max_body: int | None = None
    ) -> None:
        self.pipeline = pipeline
        self.max_body = limit_bytes(max_body)  # the front's own bound, whatever stages are configured
        self.extras = Pipeline(extra_addons) if extra_addons else None
        self.connected: tuple[Callable[[server_hooks.ServerConnectionHookData], object], ...] = tuple(
            hook for addon in extra_addons if callable(hook := getattr(addon, "server_connected", None))
        )
        self.pool = pool
        self._clients: set[asyncio.StreamWriter] = set()
        self._direct = 0  # requests handed over in process, being served
        # their client and unconnected server, as one connection's requests share them
        self.direct_ends = (
            connection.Client(peername=IN_PROCESS, sockname=IN_PROCESS, state=connection.ConnectionState.OPEN),
            connection.Server(address=None),
        )

    def hook(self, name: str, arg: object) -> None:
        """Run hook ``name`` of our stages, then of the extra addons, as mitmproxy orders them."""
        getattr(self.pipeline, name)(arg)
        if self.extras is not None:
            getattr(self.extras, name)(arg)

    async def hook_async(self, name: str, arg: object) -> None:
        await getattr(self.pipeline, name)(arg)
        if self.extras is not None:
            await getattr(self.extras, name)(arg)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            writer.write(bare_answer(503, f"clavis-mcp is serving {MAX_CLIENTS} base-URL connections; retry shortly"))
            writer.close()
            return
        self._clients.add(writer)
        client = connection.Client(
            peername=writer.get_extra_info("peername"),
            sockname=writer.get_extra_info("sockname"),
            state=connection.ConnectionState.OPEN,
        )
        unconnected = connection.Server(address=None)  # a flow's until it has its own (as in mitmproxy)
        gone = _ClientWatch(reader)
        pending: bytes | None = b""
        try:
            while pending is not None:
                head = await _read_head(reader, pending)
                if head is None:
                    return
                exchange = _SocketExchange(self, (client, unconnected), reader, writer)
                gone.exchange = exchange
                pending = await exchange.run(head)
        except (ConnectionError, TimeoutError, _ClientGone):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def serve_direct(self, request: DirectRequest, answer: DirectAnswer) -> None:
        """Serve a base-URL request handed over by a caller in this process (the MCP gateway): the
        same stages, checks, bounds and records as for a connection, without a socket or an HTTP
        parser between the two. Its head is judged as h11 judges one (:mod:`.direct_head`); one
        over ``HEAD_MAX`` is refused (431), and past ``MAX_CLIENTS`` requests at once a new one is
        answered 503, as a new connection would be."""
        exchange = answer.exchange = DirectExchange(self, answer)
        if self._direct >= MAX_CLIENTS:
            await exchange._bare_error(503, f"clavis-mcp is serving {MAX_CLIENTS} requests in process; retry shortly")
            return
        method, target, fields = request.method, request.target, request.fields
        too_long = len(target) + sum(len(name) + len(value) + 4 for name, value in fields) > HEAD_MAX
        framing = None if too_long else framing_of(method, target, fields)  # (a socket's is cut there: 431)
        if framing is None:
            line = _REQUEST_LINE.match(b"%s %s HTTP/" % (method, target))
            await exchange.refuse_unreadable(line, 431 if too_long else 400)
            return
        f = exchange._flow(_request(method, target, http.Headers(fields), b"1.1"))
        f.request.data.content = request.body
        self._direct += 1
        try:
            await exchange.serve_flow(f, None, framing_shape(framing))
        finally:
            self._direct -= 1

    def close(self) -> None:
        """Close every client connection and idle upstream connection at once (the proxy is stopping)."""
        for writer in list(self._clients):
            writer.transport.abort()
        self.pool.close()


async def _read_head(reader: asyncio.StreamReader, pending: bytes) -> bytes | None:
    """``pending`` extended until it holds a whole request head; None if the client closed first.
    The first byte may take ``IDLE_SECONDS``, the rest of the head ``HEAD_SECONDS`` (TimeoutError);
    each read's bytes are searched once (with the 3 before them); a head longer than ``HEAD_MAX``
    is cut there, so that its reading refuses it (431, as h11 did) whether or not its end came."""
    buffer = bytearray(pending.lstrip(b"\r\n"))
    if not buffer:
        async with asyncio.timeout(IDLE_SECONDS):
            while not buffer:  # (blank lines between requests are skipped)
                if not (data := await reader.read(READ)):
                    return None
                buffer += data.lstrip(b"\r\n")
    if (end := HEAD_END.search(buffer)) is None:
        async with asyncio.timeout(HEAD_SECONDS):
            while end is None:
                if len(buffer) > HEAD_MAX:
                    return bytes(buffer[: HEAD_MAX + 1])
                searched = len(buffer)
                if not (data := await reader.read(READ)):
                    return None
                buffer += data
                end = HEAD_END.search(buffer, max(0, searched - 3))
    return bytes(buffer[: HEAD_MAX + 1] if end.end() > HEAD_MAX + 1 else buffer)


def _headers(fields: tuple[tuple[bytes, bytes], ...]) -> http.Headers:
    """Headers of fields :mod:`.http1_messages` read, bytes pairs already: without the check and
    copy of each field by the constructor (2 µs a head, as much as reading it), as :func:`_message`."""
    headers = http.Headers.__new__(http.Headers)
    headers.fields = fields
    return headers


def _request(method: bytes, target: bytes, headers: http.Headers, version: bytes) -> http.Request:
    """The flow's request, as the front read it (the Host header gives its host and port)."""
    host, port = _authority(next((v for n, v in headers.fields if n.lower() == b"host"), b""))
    return _message(
        http.Request, http.RequestData, http_version=b"HTTP/" + version, headers=headers, content=None,
        trailers=None, timestamp_start=time.time(), timestamp_end=None, host=host, port=port or 80,
        method=bytes(method), scheme=b"http", authority=b"", path=bytes(target),
    )  # fmt: skip


def _buffered_body(reader: RequestReader) -> bytes | None:
    """The request's body if it came whole with its head (already in memory); None if more is due."""
    body = bytearray()
    while True:
        try:
            piece = reader.piece()
        except UnreadableMessage:
            return None
        if piece is None:
            return None
        if not piece:
            return bytes(body)
        body += piece


class _ClientWatch:
    """Tells the exchange in progress when its client closes or resets the connection, without
    reading from it: the reader's own end-of-stream and error calls (from its protocol) are
    wrapped, once per connection, so a request in flight costs nothing to watch."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.exchange: _Exchange | None = None
        feed_eof, set_exception = reader.feed_eof, reader.set_exception

        def eof() -> None:
            feed_eof()
            self._tell()

        def failed(exc: Exception) -> None:
            set_exception(exc)
            self._tell()

        reader.feed_eof = eof  # type: ignore[method-assign]
        reader.set_exception = failed  # type: ignore[method-assign]

    def _tell(self) -> None:
        if self.exchange is not None:
            self.exchange.client_gone()


class _Exchange:
    """One request, from its read head to the last byte of its response. How the request came and
    how the answer goes back is the subclass's: a client connection (:class:`_SocketExchange`), or
    the caller's own objects in this process (:class:`DirectExchange`)."""

    def __init__(self, front: BaseUrlServer, ends: tuple[connection.Client, connection.Server]) -> None:
        self.front = front
        self.client, self.unconnected = ends
        self.interrupt: tuple[int, str] | http.Response | None = None
        self.waiting = False
        self.done = False
        self.head_sent = False
        self.body_check: Callable[[int], None] | None = None
        self.keep_client = False
        self.task = asyncio.current_task()
        self.in_flight = False  # the request is read whole: the client's going away now fails it

    # -- what stages reach through stream_events ---------------------------------------------------

    def answer(self, response: http.Response) -> bool:
        return self._interrupt(response)

    def fail(self, message: str, code: ErrorCode) -> bool:
        return self._interrupt((code.http_status_code() or 502, message))

    def watch_body(self, check: Callable[[int], None]) -> None:
        self.body_check = check

    def client_gone(self) -> None:
        """The client closed or reset its connection: a request in flight fails as ``client
        disconnected`` (the audit says the client gave up), as under mitmproxy."""
        if self.in_flight:
            self._interrupt((0, "client disconnected"))

    def _interrupted(self) -> bool:
        return self.interrupt is not None

    def _interrupt(self, what: tuple[int, str] | http.Response) -> bool:
        if self.done or self.interrupt is not None:
            return False
        self.interrupt = what
        if self.waiting and self.task is not None:
            self.task.cancel()
        return True

    async def _wait[T](self, awaitable: Awaitable[T]) -> T:
        """Await something a stage between hooks may cut short (a timeout, the body bound, a stop)."""
        if self.interrupt is not None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise _Failed("interrupted")
        self.waiting = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self._interrupted() or self.task is None:
                raise
            self.task.uncancel()
            raise _Failed("interrupted") from None
        finally:
            self.waiting = False

    # -- the exchange --------------------------------------------------------------------------------

    async def serve_flow(self, f: http.HTTPFlow, parser: RequestReader | None, shape: str | None) -> None:
        """Serve a request whose head is read: ``parser`` reads its body still to come (None: the
        body is the flow's already); ``shape``: the request-smuggling shape its head has."""
        serve_by_front(f, self)
        try:
            if shape is not None:  # recorded, as a refusal of ours
                f.metadata[DECISION] = REFUSED
                f.metadata[REASON] = reason = f"request refused: {shape}"
                raise _Failed(reason, 400)
            await self._serve(f, parser)
        except _Failed as failure:
            await self._failed(f, failure)
        except _ClientGone:
            self._gone(f)
        except Exception as exc:  # a fault of ours: fail the flow (recorded), never leave it half done
            logger.error("clavis-mcp base-URL front failed: %s", type(exc).__name__)
            self.keep_client = False
            await self._failed(f, _Failed(f"internal error ({type(exc).__name__})"))
        finally:
            self.done = True

    async def refuse_unreadable(self, line: re.Match[bytes] | None, status: int) -> None:
        """A head that cannot be read is refused and recorded like any refusal (one record per
        decision): its method and target as far as its request ``line`` shows them plainly, else ``-``."""
        method, target = (line[1], line[2]) if line else (b"-", b"-")
        target = without_key(target.decode("ascii")).encode("ascii")  # a readable head loses it too
        f = self._flow(_request(method, target, _headers(()), b"1.1"))
        f.metadata[DECISION] = REFUSED
        f.metadata[REASON] = "request refused: malformed request head"
        await self._failed(f, _Failed(f.metadata[REASON], status))

    def _flow(self, request: http.Request) -> http.HTTPFlow:
        f = http.HTTPFlow(self.client, self.unconnected, live=True)
        f.request = request
        f.metadata[FRONT] = True
        return f

    async def _serve(self, f: http.HTTPFlow, parser: RequestReader | None) -> None:
        self.front.hook("requestheaders", f)
        if self.interrupt is not None:
            raise _Failed("interrupted")
        if f.error is not None:
            raise _Failed(f.error.msg)
        request = f.request
        if f.response is None and f.error is None:
            if f.metadata.get(MARK) is None:
                refuse(f, 400, "not a base-URL request: this connection carries /s/<service>/<path> requests only")
            elif "upgrade" in request.headers:
                refuse(f, 400, UPGRADE_REFUSAL)
        expects = request.headers.pop("expect", "").lower() == "100-continue"
        if parser is None:  # handed over in process, with its body
            self._body_grew(len(request.raw_content or b""))
        elif not await self._read_body_of(f, parser, expects):
            return  # answered on its head, and its body never read
        request.timestamp_end = time.time()
        self.in_flight = True
        await self.front.hook_async("request", f)
        if f.error is not None:
            raise _Failed(f.error.msg)
        if f.response is not None:
            await self._answer(f, close=False)
        else:
            await self._forward(f)

    # -- upstream ------------------------------------------------------------------------------------

    async def _forward(self, f: http.HTTPFlow) -> None:
        request = f.request
        service, agent = f.metadata.get(SERVICE), f.metadata.get(CLIENT)
        key: PoolKey | None = None
        if isinstance(service, str) and isinstance(agent, str):
            key = (agent, service, request.host, request.port)
        upstream = self.front.pool.take(key) if key is not None else None
        if upstream is None:
            upstream = await self._dial(f, key)
        f.server_conn = upstream.server
        kept = False
        try:
            kept = await self._exchange_upstream(f, upstream)
        finally:
            if kept and key is not None:
                self.front.pool.give_back(upstream)
            else:
                upstream.close()

    async def _dial(self, f: http.HTTPFlow, key: PoolKey | None) -> Upstream:
        request = f.request
        server = connection.Server(address=(request.host, request.port), tls=True)
        data = server_hooks.ServerConnectionHookData(server=server, client=self.client)
        await self._wait(self.front.hook_async("server_connect", data))
        if server.error:
            raise _Failed(server.error)
        try:
            upstream = await self._wait(self.front.pool.dial(server, key or ("", "", request.host, request.port)))
        except (OSError, TimeoutError) as exc:
            raise _Failed(connect_failure(request.host, request.port, exc)) from None
        for hook in self.front.connected:
            hook(data)
        return upstream

    async def _exchange_upstream(self, f: http.HTTPFlow, upstream: Upstream) -> bool:
        """Send the request, relay the response; True if ``upstream`` may carry another request."""
        request = f.request
        fields = without_hop_by_hop(request.headers.fields)
        body = request.raw_content or b""
        if body or request.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            fields.append((b"Content-Length", b"%d" % len(body)))
        try:
            out = request_head(request.data.method, request.data.path, fields)
        except ValueError:
            raise _Failed("the request cannot be sent as HTTP/1.1 (a header or the path is malformed)", 400) from None
        upstream.writer.write(out + body if body else out)
        reader = ResponseReader(request.data.method)
        try:
            await self._wait(upstream.writer.drain())
            event = await self._response_head(reader, upstream)
        except _Failed:
            if isinstance(self.interrupt, http.Response):  # the head timeout answered for the upstream
                f.response = self.interrupt
                self.interrupt = None
                await self._answer(f, close=True)
                return False
            raise
        if (shape := response_framing(event)) is not None:
            raise _Failed(f"bad response: the upstream sent {shape}; refused")
        status = event.status_code
        head = tuple(without_connection_named(event.fields))
        f.response = _message(
            http.Response, http.ResponseData, http_version=b"HTTP/" + event.http_version, headers=_headers(head),
            content=None, trailers=None, timestamp_start=time.time(), timestamp_end=None,
            status_code=event.status_code, reason=event.reason,
        )  # fmt: skip
        built = f.response
        self.front.hook("responseheaders", f)
        response = f.response
        assert response is not None
        if f.error is not None:
            raise _Failed(f.error.msg)
        if response is not built:  # a stage answered instead: the upstream's body is never read
            await self._answer(f, close=False, headers_done=True)
            return False
        if response.stream and has_body(request.method, response.status_code):
            await self._stream(f, reader, upstream)
        else:
            content: list[bytes] = []
            size = 0  # redaction streams what is larger; what it leaves whole past this it would refuse
            while piece := await self._next(reader, upstream):
                content.append(piece)
                size += len(piece)
                if size > STREAM_THRESHOLD:
                    raise _Failed(f"the upstream's body is over {STREAM_THRESHOLD} bytes and clavis-mcp cannot "
                                  "scan it as a stream (a content coding it cannot decode?); refused")  # fmt: skip
            response.data.content = b"".join(content)
            await self._answer(f, close=False, headers_done=True)
        clean = reader.reusable and has_body(request.method, status)  # after HEAD, 204, 304 the framing is unsure
        return clean and f.error is None

    async def _response_head(self, reader: ResponseReader, upstream: Upstream) -> ResponseHead:
        """The upstream's final response head (its 1xx ones are not relayed)."""
        return await self._read_until(reader.head, reader, upstream)

    async def _next(self, reader: ResponseReader, upstream: Upstream) -> bytes:
        """The response body's next piece, ``b""`` at its end."""
        return await self._read_until(reader.piece, reader, upstream)

    async def _read_until[T](self, step: Callable[[], T | None], reader: ResponseReader, upstream: Upstream) -> T:
        """``step()``'s answer, reading from the upstream while it needs more bytes."""
        try:
            while (answer := step()) is None:
                try:
                    data = await self._wait(upstream.reader.read(READ_UPSTREAM))
                except (ConnectionError, ssl.SSLError):
                    raise _Failed("connection reset by the upstream") from None
                reader.feed(data)
        except UnreadableMessage as exc:
            raise _Failed(str(exc)) from None
        return answer

    async def _stream(self, f: http.HTTPFlow, reader: ResponseReader, upstream: Upstream) -> None:
        response = f.response
        assert response is not None
        stream = response.stream
        chunked = f.request.http_version == "HTTP/1.1"
        self.keep_client = chunked and self._client_keeps(f)
        await self._send_head(f, response, chunked)
        while True:
            data = await self._next(reader, upstream)
            out = stream(data) if callable(stream) else [data] if data else []
            for chunk in [out] if isinstance(out, bytes) else out:
                if chunk:
                    await self._send_chunk(chunk, chunked)
            if not data:
                break
        response.timestamp_end = time.time()
        await self.front.hook_async("response", f)
        if f.error is not None:  # killed after the headers had gone: the client sees a cut body
            self._abort()
            raise _ClientGone
        await self._send_end(chunked)

    # -- to the client -------------------------------------------------------------------------------

    def _client_keeps(self, f: http.HTTPFlow) -> bool:
        return f.request.http_version == "HTTP/1.1" and "close" not in f.request.headers.get("connection", "").lower()

    async def _answer(self, f: http.HTTPFlow, close: bool, headers_done: bool = False) -> None:
        """Run the response hooks on a response not streamed (``responseheaders`` too, unless it ran
        on the upstream's head, as mitmproxy does for a response a stage made), and send it whole."""
        if not headers_done:
            self.front.hook("responseheaders", f)
        response = f.response
        assert response is not None
        response.timestamp_end = time.time()
        await self.front.hook_async("response", f)
        response = f.response
        assert response is not None
        if f.error is not None:
            raise _Failed(f.error.msg)
        self.keep_client = not close and self._client_keeps(f)
        content = response.raw_content or b""
        sends_body = has_body(f.request.method, response.status_code)
        length = len(content) if sends_body else None
        await self._send_whole(f, response, length, content if sends_body else b"")

    def _body_grew(self, size: int) -> None:
        """The request body has ``size`` bytes so far: past the front's bound, or a stage's, it is refused."""
        if size > self.front.max_body:
            raise _Failed(too_large(self.front.max_body, f"its body, past {self.front.max_body} bytes so far"), 413)
        if self.body_check is not None:
            self.body_check(size)
        if self.interrupt is not None:
            raise _Failed("interrupted")

    def _head_fields(
        self, f: http.HTTPFlow, response: http.Response, *, length: int | None, chunked: bool, close: bool
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The reason phrase and header fields the client is sent: never a hop-by-hop field of the
        upstream's, framing of our own."""
        fields = without_hop_by_hop(response.headers.fields)
        if length is not None:
            fields.append((b"Content-Length", b"%d" % length))
        elif not has_body(f.request.method, response.status_code) and "content-length" in response.headers:
            fields.append((b"Content-Length", response.headers["content-length"].encode()))
        if chunked:
            fields.append((b"Transfer-Encoding", b"chunked"))
        if close:
            fields.append((b"Connection", b"close"))
        self.head_sent = True
        return response.data.reason.replace(b"\r", b"").replace(b"\n", b""), fields

    # -- the client side, the subclass's ---------------------------------------------------------------

    async def _read_body_of(self, f: http.HTTPFlow, parser: RequestReader, expects: bool) -> bool:
        """Read the request's body into the flow; False if the request was answered on its head."""
        raise NotImplementedError

    async def _send_whole(self, f: http.HTTPFlow, response: http.Response, length: int | None, body: bytes) -> None:
        raise NotImplementedError

    async def _send_head(self, f: http.HTTPFlow, response: http.Response, chunked: bool) -> None:
        raise NotImplementedError

    async def _send_chunk(self, chunk: bytes, chunked: bool) -> None:
        raise NotImplementedError

    async def _send_end(self, chunked: bool) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """Cut the answer whose head has gone: the client must see a broken body, not a whole one."""
        raise NotImplementedError

    async def _bare_error(self, status: int, text: str, refused: str | None = None) -> None:
        """Answer with an error of ours (no head has gone yet); ``refused``: the reason of a refusal,
        sent in ``REFUSED_HEADER`` as a stage's refusal is, so that a client (call_service) tells
        the front's own answer from the provider's even where the front could not read the head."""
        raise NotImplementedError

    async def _failed(self, f: http.HTTPFlow, failure: _Failed) -> None:
        """The flow failed: the error hooks run (the audit records why), the client is told why."""
        self.keep_client = False
        status, message = failure.status, str(failure)
        if isinstance(self.interrupt, tuple):
            status, message = self.interrupt
        if status == 0:  # the client is gone: no one to answer
            f.error = f.error or flow.Error(message)
            f.live = False
            self.front.hook("error", f)
            return
        if f.error is None:
            f.error = flow.Error(message)
        f.live = False
        self.front.hook("error", f)
        if self.head_sent:
            self._abort()  # a cut body, not one that looks whole
            return
        refused = f.metadata.get(REASON) if f.metadata.get(DECISION) == REFUSED else None
        await self._bare_error(status, f"clavis-mcp could not complete this request: {f.error.msg}", refused)

    def _gone(self, f: http.HTTPFlow) -> None:
        self.keep_client = False
        if f.error is None:
            f.error = flow.Error("client disconnected")
            f.live = False
            self.front.hook("error", f)


class _SocketExchange(_Exchange):
    """A request on a client connection: its head and body read from it, its answer written to it."""

    def __init__(
        self,
        front: BaseUrlServer,
        ends: tuple[connection.Client, connection.Server],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(front, ends)
        self.reader, self.writer = reader, writer

    async def run(self, head: bytes) -> bytes | None:
        """Serve one request; return what the client sent after it, or None to close."""
        parser = RequestReader(head, HEAD_MAX)
        try:
            head_read = parser.head()
        except UnreadableMessage as exc:
            await self.refuse_unreadable(_REQUEST_LINE.match(head), exc.status)
            return None
        headers = _headers(tuple(head_read.fields))
        f = self._flow(_request(head_read.method, head_read.target, headers, head_read.http_version))
        await self.serve_flow(f, parser, smuggling_shape(head))
        if not self.keep_client or not parser.reusable:
            return None
        return parser.rest

    async def _read_body_of(self, f: http.HTTPFlow, parser: RequestReader, expects: bool) -> bool:
        request = f.request
        if f.response is not None:  # answered on the head: a body not already here is never read
            body = _buffered_body(parser)
            if body is None:
                await self._answer(f, close=True)
                await self._linger()
                return False
            request.data.content = body
            return True
        if expects:
            await self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.data.content = await self._request_body(f, parser)
        return True

    async def _request_body(self, f: http.HTTPFlow, parser: RequestReader) -> bytes:
        limit = self.front.max_body
        declared = f.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Failed(too_large(limit, f"its Content-Length of {int(declared)} bytes"), 413)
        body = bytearray()
        while True:
            try:
                piece = parser.piece()
            except UnreadableMessage:
                raise _Failed("malformed request body (bad chunked framing or a short body)", 400) from None
            if piece is None:
                try:
                    data = await self._wait(self._read_body())
                except TimeoutError:
                    raise _Failed(f"the client sent no part of its body for {BODY_READ_SECONDS:.0f} s", 408) from None
                if not data:
                    raise _ClientGone
                parser.feed(data)
            elif piece:
                body += piece
                self._body_grew(len(body))
            else:
                return bytes(body)  # its end: a chunked body's trailers are dropped

    async def _read_body(self) -> bytes:
        async with asyncio.timeout(BODY_READ_SECONDS):
            return await self.reader.read(READ)

    async def _send_whole(self, f: http.HTTPFlow, response: http.Response, length: int | None, body: bytes) -> None:
        head = self._head(f, response, length=length, chunked=False, close=not self.keep_client)
        await self._write(head, body)  # one write: one send on the socket

    async def _send_head(self, f: http.HTTPFlow, response: http.Response, chunked: bool) -> None:
        await self._write(self._head(f, response, length=None, chunked=chunked, close=not self.keep_client))

    async def _send_chunk(self, chunk: bytes, chunked: bool) -> None:
        await self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)

    async def _send_end(self, chunked: bool) -> None:
        if chunked:
            await self._write(b"0\r\n\r\n")

    def _abort(self) -> None:
        self.writer.transport.abort()

    def _head(
        self, f: http.HTTPFlow, response: http.Response, *, length: int | None, chunked: bool, close: bool
    ) -> bytes:
        reason, fields = self._head_fields(f, response, length=length, chunked=chunked, close=close)
        head = b"HTTP/1.1 %d %s\r\n" % (response.status_code, reason)
        return head + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"

    async def _write(self, data: bytes, more: bytes = b"") -> None:
        if self.writer.is_closing():  # (writelines on a lost connection raises AttributeError)
            raise _ClientGone
        if more:
            self.writer.writelines((data, more))  # one sendmsg, no copy of a large body
        else:
            self.writer.write(data)
        try:
            await self._wait(self.writer.drain())
        except ConnectionError:
            raise _ClientGone from None

    async def _bare_error(self, status: int, text: str, refused: str | None = None) -> None:
        self.head_sent = True
        answer = bare_answer(status, text)
        if refused is not None:  # after the status line
            line, _, rest = answer.partition(b"\r\n")
            answer = b"%s\r\n%s: %s\r\n%s" % (line, *_refused_field(refused), rest)
        try:
            self.writer.write(answer)
            await self.writer.drain()
            await self._linger()
        except ConnectionError:
            pass

    async def _linger(self) -> None:
        """Read and drop what the client still sends (a body we refused) for a moment before closing:
        closing on unread bytes resets the connection, and the client could lose our answer."""
        if self.writer.can_write_eof():
            self.writer.write_eof()
        dropped = 0
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while dropped < LINGER_BYTES and (data := await self.reader.read(READ)):
                    dropped += len(data)
        except TimeoutError:
            pass


@dataclass(frozen=True, slots=True)
class DirectRequest:
    """A base-URL request as a caller in this process hands it over: its head already split."""

    method: bytes
    target: bytes
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes


class DirectAnswer:
    """The answer to a :class:`DirectRequest`, as its exchange makes it: the head (status, reason,
    fields) once, then the body's pieces, then None at its end, or an exception where it was cut.
    At most ``DIRECT_PIECES`` pieces wait to be read (``room``): the exchange waits for a caller
    slow to read, as it would for a client's full socket; the end or the cut always fits."""

    def __init__(self) -> None:
        self.head: asyncio.Future[tuple[int, bytes, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.body: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.room = asyncio.Semaphore(DIRECT_PIECES)
        self.exchange: DirectExchange | None = None

    async def piece(self) -> bytes | None:
        """The body's next piece, None at its end; raises where the exchange cut it."""
        piece = await self.body.get()
        if isinstance(piece, Exception):
            raise piece
        if piece is not None:
            self.room.release()
        return piece

    def caller_gone(self) -> None:
        """The caller stopped waiting or reading (its timeout, its download bound): as a client that
        closed its connection, the request in flight fails and is recorded as given up."""
        if self.exchange is not None:
            self.exchange.client_gone()


class DirectExchange(_Exchange):
    """A request handed over in process: its answer goes to a :class:`DirectAnswer`."""

    def __init__(self, front: BaseUrlServer, answer: DirectAnswer) -> None:
        super().__init__(front, front.direct_ends)
        self._answer_to = answer

    def _send_head_now(self, status: int, reason: bytes, fields: list[tuple[bytes, bytes]]) -> None:
        if not self._answer_to.head.done():
            self._answer_to.head.set_result((status, reason, fields))

    async def _send_whole(self, f: http.HTTPFlow, response: http.Response, length: int | None, body: bytes) -> None:
        reason, fields = self._head_fields(f, response, length=length, chunked=False, close=False)
        self._send_head_now(response.status_code, reason, fields)
        if body:
            await self._put(body)
        await self._put(None)

    async def _send_head(self, f: http.HTTPFlow, response: http.Response, chunked: bool) -> None:
        reason, fields = self._head_fields(f, response, length=None, chunked=False, close=False)
        self._send_head_now(response.status_code, reason, fields)

    async def _send_chunk(self, chunk: bytes, chunked: bool) -> None:
        await self._put(chunk)

    async def _send_end(self, chunked: bool) -> None:
        await self._put(None)

    def _abort(self) -> None:
        self._answer_to.body.put_nowait(ConnectionResetError("clavis-mcp cut the answer short (see its audit record)"))

    async def _bare_error(self, status: int, text: str, refused: str | None = None) -> None:
        self.head_sent = True
        reason, fields, body = bare_parts(status, text)
        self._send_head_now(status, reason, fields if refused is None else [*fields, _refused_field(refused)])
        await self._answer_to.room.acquire()  # at once: nothing of this answer was queued before it
        self._answer_to.body.put_nowait(body)
        self._answer_to.body.put_nowait(None)

    async def _put(self, piece: bytes | None) -> None:
        if piece is not None:
            await self._wait(self._answer_to.room.acquire())
        self._answer_to.body.put_nowait(piece)
