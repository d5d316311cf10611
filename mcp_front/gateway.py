"""The MCP server's side of the proxy: start it on first use, and send calls through it.

The proxy is started lazily so it never delays the MCP ``initialize`` handshake. Calls reach it
in base-URL mode, ``/s/<service>@<host:port>/<path>`` with this process's own agent key, handed
to the proxy's base-URL front in this process (``proxy/in_process.py``): no socket, TLS, CONNECT
or HTTP parser between the gateway and the proxy (those hops were three quarters, then a third,
of a call), and the proxy runs the same stages as for any request: the service named in the URL
must own the destination, the credential is injected, the answer redacted and recorded. A plain
``http://`` target (a local service that allows it) cannot be named that way (base-URL mode
always sends HTTPS): it goes to the proxy as to a forward proxy, in absolute form with this
process's proxy credential, on keep-alive HTTP/1.1 connections of its own. Both kinds go through
long-lived httpx clients (one per kind), which keep no cookies, follow no redirects and decode
nothing. Responses are read raw and decoded here within a bound, so a huge body cannot exhaust
the process. Each response carries the redactors of the secrets that may be in it (the service's
secret as it was from the moment the request left until its answer was read), for scrubbing
what the model finally reads.

The proxy (mitmproxy) and httpx are imported on the first call: nothing before the handshake
pays for them. httpx's exceptions are translated here, into the product's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import ssl
import time
from collections.abc import AsyncIterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, cast

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.approvals import ApprovalHold
from clavis_mcp.vault.errors import CallFailed, CallRefused, DecodedTooLarge, DecodeError
from clavis_mcp.vault.proxy_config import ProxyConfig
from clavis_mcp.vault.proxy_headers import (
    AUDIT_ID_HEADER,
    CALL_HEADER,
    REDACTIONS_HEADER,
    REFUSED_HEADER,
    SELECT_HEADER,
)

from . import __version__
from .calls import CallLimits, Scrubber
from .failures import failure_message, timeout_message

if TYPE_CHECKING:
    import httpx

    from clavis_mcp.certs import LocalCA
    from clavis_mcp.proxy import EmbeddedProxy
    from clavis_mcp.proxy.in_process import InProcessTransport
    from clavis_mcp.vault.redaction.service import ServiceRedactor, ServiceRedactors

MCP_CLIENT = "mcp"
HOLD_MARGIN = 5.0  # a held call is refused this long before the call's timeout, so the model reads why
_ELICITED: ContextVar[bool] = ContextVar("clavis_elicited", default=False)  # the user accepted this call
CONNECT_TIMEOUT = 10.0
AGENT_HEADER = "X-Clavis-Agent"  # base-URL mode's agent key header (proxy/base_url.py)
# What every request asks for unless the model's headers say otherwise: the content codings the
# gateway decodes itself (vault/redaction/decoding.py), and a name for the client.
DEFAULT_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate, br, zstd",
    "user-agent": f"clavis-mcp/{__version__}",
}
IDLE_CONNECTIONS = 8  # http:// calls: kept open to the proxy between calls; more at once open more
KEEPALIVE_SECONDS = 120.0  # an idle connection's life: well inside the proxy's own
RECORD_WAIT = 5.0  # how long a failed call waits for the proxy to record it (it notices the call given up)
type Record = Mapping[str, Any]
# How far past the model's cut a body is kept, in lengths of the longest listed spelling, so a
# spelling begun before the cut is scanned whole: room for every character escaped twice over
# (JSON inside a URL, HTML inside JSON). NUL bytes, which the decoded views skip, are not kept.
LOOKAHEAD_SPELLINGS = 16
PLAIN_NAME = re.compile(r"[a-z0-9._-]+")  # a service name httpx leaves as it is in a URL's path


@dataclass(frozen=True, slots=True)
class Fetched:
    """One response as the proxy returned it: redacted, bounded, with the proxy's own facts."""

    status: int
    url: str
    headers: list[tuple[str, str]]
    head: bytes  # the first bytes of the body, at most the response-body limit
    beyond: bytes  # the bytes after the head, NULs left out, as far as a spelling begun in the head may run
    size: int  # bytes read; the whole body unless ``complete`` is False (then the download bound)
    complete: bool
    sha256: str
    audit_id: str | None
    redactions: int
    refused: str | None
    received_at: float
    scrubber: Scrubber  # the secrets that may be in this response, for what the model reads of it
    record: Record | None = None  # the proxy's audit record of this request, as written

    @property
    def failed_in_clavis(self) -> bool:
        """The proxy answered a failure itself (TLS, DNS, connect, a body that broke off): what came
        back is its error page, not the provider's answer. (A body this gateway stopped reading at its
        bound is recorded as an error too, the client having gone; that answer is shown, cut.)"""
        return self.record is not None and self.record.get("decision") == "error" and self.complete

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


def no_cookies() -> CookieJar:
    """A jar that keeps nothing: one client serves every service, and a cookie one upstream sets
    must never reach another (or come back to it on a later call the model did not ask for)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def no_tls() -> ssl.SSLContext:
    """The trust of a client that only ever speaks plain HTTP to loopback: verification on, no CA
    trusted, so a TLS handshake on this hop could only fail."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _Download:
    """A body as the gateway reads it: raw from the wire, decoded here within the download bound.

    httpx would decode each chunk whole (a kilobyte of brotli can be a gigabyte) and the bound
    would apply only afterwards; here no step decodes past what is still allowed. The first
    ``keep`` bytes are kept, and after them ``lookahead`` more (NUL bytes left out: readers that
    decode a spelling skip them, so an upstream could push its end away with them), so that a
    secret across the cut is scanned whole.
    """

    def __init__(self, encoding: str, keep: int, bound: int, lookahead: int = 0) -> None:
        from clavis_mcp.vault.redaction.decoding import (
            BoundedDecoder,
        )  # brotli and zstandard: kept off the start-up path

        self._decoder = BoundedDecoder(encoding)
        self._keep, self._bound, self._lookahead = keep, bound, lookahead
        self.digest, self.size, self.complete = hashlib.sha256(), 0, True
        self.head, self.beyond = bytearray(), bytearray()

    async def read(self, chunks: AsyncIterable[bytes]) -> None:
        try:
            async for raw in chunks:
                for piece in self._decoder.decode(raw, self._bound - self.size):
                    self._add(piece)
            self._decoder.finish()
        except DecodedTooLarge:
            self.complete = False  # the rest is not read: closing the response drops it

    def _add(self, piece: bytes) -> None:
        self.digest.update(piece)
        self.size += len(piece)
        room = self._keep - len(self.head)
        if room > 0:
            self.head += piece[:room]
            piece = piece[room:]
        if piece and len(self.beyond) < self._lookahead:
            self.beyond += piece.replace(b"\0", b"")[: self._lookahead - len(self.beyond)]


class Gateway:
    def __init__(
        self,
        vault: Vault,
        audit: AuditLog,
        ca: LocalCA,
        *,
        config: ProxyConfig | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        """``config`` is how the embedded proxy treats traffic, except who may use it: its
        ``tokens`` are replaced by this process's own. ``limits`` bound the calls the gateway
        makes through it (time, bytes kept, bytes read)."""
        self.vault = vault
        self.audit = audit
        self.ca = ca
        self.limits = limits or CallLimits()
        self._config = config or ProxyConfig()
        self._token = secrets.token_urlsafe(32)
        self._proxy: EmbeddedProxy | None = None
        self._base_url: httpx.AsyncClient | None = None  # https:// targets, in base-URL mode, in process
        self._in_process: InProcessTransport | None = None  # its transport
        self._client_fields: tuple[tuple[bytes, bytes], ...] = ()  # its Host field and default headers
        self._forward: httpx.AsyncClient | None = None  # http:// targets, the proxy as a forward proxy
        self._origin = ""  # the proxy's base URL, http://127.0.0.1:<port>
        self._lock = asyncio.Lock()
        self._redactors: ServiceRedactors | None = None
        self._pending: dict[str, asyncio.Future[Record]] = {}
        self._elicited: set[str] = set()  # ids of calls the user accepted by elicitation: not held again

    def _recorded(self, call: str, record: Record) -> None:
        """The proxy wrote the audit record of call ``call`` (same process, same event loop)."""
        waiting = self._pending.get(call)
        if waiting is not None and not waiting.done():
            waiting.set_result(record)

    async def _clients(self) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        """The clients to the proxy, base-URL and forward (the proxy is started on first use)."""
        async with self._lock:
            if self._base_url is None or self._forward is None:
                # mitmproxy and httpx are imported here, not at module load: together they cost
                # over half a second, which would otherwise delay the MCP handshake (DESIGN.md §9).
                import httpx

                from clavis_mcp.proxy import EmbeddedProxy

                config = replace(self._config, tokens=lambda: {MCP_CLIENT: self._token}, on_recorded=self._recorded,
                                 approvals=self._hold())  # fmt: skip
                self._proxy = EmbeddedProxy(self.vault, self.audit, self.ca, config)
                await self._proxy.start()
                self._origin = self._proxy.url
                from clavis_mcp.proxy.in_process import InProcessTransport

                self._in_process = InProcessTransport(self._proxy.front)
                self._base_url = self._client(headers={AGENT_HEADER: self._token}, transport=self._in_process)
                self._client_fields = ((b"Host", httpx.URL(self._origin).netloc), *self._base_url.headers.raw)
                self._forward = self._client(proxy=httpx.Proxy(self._origin, auth=(MCP_CLIENT, self._token)))
            return self._base_url, self._forward

    def _client(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        proxy: httpx.Proxy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncClient:
        """A client for the hop to the proxy: ``transport`` (in process), else plain HTTP/1.1 on
        loopback, keep-alive; no cookies, no redirects followed, no environment read (no proxy, no
        CA), ``DEFAULT_HEADERS`` on every request."""
        import httpx

        if transport is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=IDLE_CONNECTIONS,
                                  keepalive_expiry=KEEPALIVE_SECONDS)  # fmt: skip
            transport = httpx.AsyncHTTPTransport(verify=no_tls(), trust_env=False, limits=limits, proxy=proxy)
        return httpx.AsyncClient(
            transport=transport,
            cookies=no_cookies(),
            headers={**DEFAULT_HEADERS, **(headers or {})},
            follow_redirects=False,
            timeout=httpx.Timeout(self.limits.timeout, connect=min(CONNECT_TIMEOUT, self.limits.timeout)),
            trust_env=False,
        )

    async def fetch(self, service: str, method: str, url: str, **request: Any) -> Fetched:
        """Send one request for ``service``; keep the body's first bytes, hash and count up to the download bound.

        ``request`` holds its ``headers``, ``params`` (merged into the URL's query) and ``content``
        (the body's bytes), the keywords httpx took.

        The proxy decides, injects, redacts and records, and hands this gateway the audit record
        of the request (marked with a fresh id in ``CALL_HEADER``): the result carries it, so the
        tool reports what the log says. Raises when the whole exchange takes
        longer than the call timeout or the exchange broke: ``CallFailed``, with the cause, the fix
        and the audit id. The result carries the redactors of the service's secret as it was when the
        request left, when the answer's head arrived and once its body was read.
        """
        headers: Mapping[str, str] = request.pop("headers", None) or {}
        params: Mapping[str, str] | None = request.pop("params", None)
        content: bytes | str | None = request.pop("content", None)  # (a connector's probe body is text)
        if request:
            raise TypeError(f"fetch() takes headers, params and content, not {', '.join(request)}")
        clients = await self._clients()
        import httpx  # loaded by _clients(); the name is needed for the URL and the translation below

        try:  # call_service checked its URL as httpx reads it; a connector's probe URL was not
            target = httpx.URL(url)
            if params:
                target = target.copy_merge_params(dict(params))
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise CallRefused(f"the URL cannot be sent ({str(exc).split(':', 1)[0]}); nothing was sent") from None
        call = secrets.token_hex(16)
        if _ELICITED.get():
            self._elicited.add(call)
        recorded = self._pending[call] = asyncio.get_running_loop().create_future()
        cancelled = False
        try:
            try:
                fetched = await self._exchange(clients, service, method, target, call, headers, content, recorded)
            except (TimeoutError, httpx.TimeoutException):
                raise CallFailed(
                    timeout_message(target.host, self.limits.timeout, await _record_of(recorded))
                ) from None
            except (httpx.HTTPError, DecodeError):  # the record says why: TLS, DNS, connect, reset, a body cut
                raise CallFailed(failure_message(service, target.host, await _record_of(recorded))) from None
            if fetched.record is not None or fetched.complete:
                return fetched
            # a body this gateway stopped reading at its bound is recorded once the proxy sees it go
            return _with_record(fetched, await _record_of(recorded))
        except asyncio.CancelledError:  # a signal stopped the server: aclose waits for the proxy to record it
            cancelled = True
            recorded.add_done_callback(lambda _: self._pending.pop(call, None))
            raise
        finally:
            self._elicited.discard(call)  # the call is over: its id is never presented again
            if not cancelled:
                self._pending.pop(call, None)

    def _hold(self) -> ApprovalHold | None:
        """The proxy's hold for these calls: it refuses before the call's own timeout, and lets a
        call the user accepted by elicitation through without asking again."""
        hold = self._config.approvals
        if hold is None:
            return None
        wait = min(hold.timeout, max(1.0, self.limits.timeout - HOLD_MARGIN))
        return replace(hold, timeout=wait, elicited=self._elicited.__contains__)

    @contextmanager
    def elicited(self, accepted: bool) -> Iterator[None]:
        """Calls made in this block were (``accepted``) approved by the user through elicitation."""
        token = _ELICITED.set(accepted)
        try:
            yield
        finally:
            _ELICITED.reset(token)

    async def _exchange(
        self,
        clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
        service: str,
        method: str,
        target: httpx.URL,
        call: str,
        headers: Mapping[str, str],
        content: bytes | str | None,
        recorded: asyncio.Future[Record],
    ) -> Fetched:
        client, addressed = self._addressed(clients, service, target)
        fields = [(SELECT_HEADER, service), (CALL_HEADER, call), *headers.items()]
        if isinstance(addressed, bytes):  # to the front in process: the fields as the client would build them
            body = content.encode() if isinstance(content, str) else content or b""
            built = built_fields(self._client_fields, method.upper(), fields, body)
        else:
            request = client.build_request(method.upper(), addressed, headers=fields, content=content)
        leaving = self.redactor(service)  # the service's secret as the request leaves
        async with asyncio.timeout(self.limits.timeout):
            if isinstance(addressed, bytes) and self._in_process is not None:
                # Straight to the front: the client's build_request would parse the URL again and
                # build a request only for the transport to take it apart, and its send would extract
                # cookies from each answer (building urllib objects) and run auth and redirect steps,
                # for a hop that keeps no cookies, authenticates in a header and follows no redirect.
                response = await self._in_process.send(method.upper().encode("ascii"), addressed, built, body)
            else:
                response = await client.send(request, stream=True)
            return await self.read_answer(service, str(target), response, leaving, recorded)

    async def read_answer(
        self,
        service: str,
        url: str,
        response: httpx.Response,
        leaving: ServiceRedactor | None = None,
        recorded: asyncio.Future[Record] | None = None,
    ) -> Fetched:
        """Read ``response`` (to a request for ``service`` to ``url``) raw, within the download bound,
        and close it: a body left unread closes its connection, so the proxy records the call given up.

        ``leaving`` is the service's secret as the request left; the secret is looked up again
        here, as the head has come and once the body is read. ``recorded`` is the proxy's audit
        record of the request: written before the response or a streamed body's end, so almost
        always there once the body is read, and its figures are the answer's."""
        keep, bound = self.limits.max_response_body, self.limits.max_download
        lookahead = LOOKAHEAD_SPELLINGS * leaving.values.longest if leaving is not None else 0
        answered = self.redactor(service)  # an OAuth token the proxy refreshed before injecting it
        headers = response.headers.multi_items()
        try:
            body = _Download(_header(headers, "content-encoding") or "", keep, bound, lookahead)
            # the stream as the transport gives it (an AsyncClient's is async), not through
            # aiter_raw, whose chunker, byte count and error context this reading has no use for
            await body.read(cast("AsyncIterable[bytes]", response.stream))
        finally:
            await response.aclose()
        read = self.redactor(service)  # one a 401 refreshed, or a rotation made, while the answer came
        record = recorded.result() if recorded is not None and recorded.done() else None
        if record is None:
            audit_id, redactions = _header(headers, AUDIT_ID_HEADER), int(_header(headers, REDACTIONS_HEADER) or 0)
        else:  # the log's own figures, also where the headers left before the record existed (a streamed body)
            audit_id, redactions = record.get("id"), record.get("redactions") or 0
        return Fetched(
            status=response.status_code,
            url=url,
            headers=headers,
            head=bytes(body.head),
            beyond=bytes(body.beyond),
            size=body.size,
            complete=body.complete,
            sha256=body.digest.hexdigest(),
            audit_id=audit_id,
            redactions=redactions,
            refused=_header(headers, REFUSED_HEADER),
            received_at=time.time(),
            scrubber=Scrubber.of(*(r for r in (leaving, answered, read) if r is not None)),
            record=record,
        )

    def _addressed(
        self, clients: tuple[httpx.AsyncClient, httpx.AsyncClient], service: str, target: httpx.URL
    ) -> tuple[httpx.AsyncClient, bytes | str | httpx.URL]:
        """Which client takes a request for ``target``, and the URL it sends to. An https:// target in
        base-URL mode: the path names the service, the upstream host and port (this process's agent
        key rides in its header), given as the path alone (bytes) where it is the path httpx would
        parse out of the whole URL: the service's name in plain characters (``PLAIN_NAME``), and the
        rest, taken from a parsed URL, parses to itself. An http:// target goes as it is, to the
        proxy as a forward proxy (absolute form, with this process's proxy credential)."""
        base_url, forward = clients
        if target.scheme != "https":
            return forward, target
        host = target.raw_host.decode("ascii")
        authority = f"[{host}]:{target.port or 443}" if ":" in host else f"{host}:{target.port or 443}"
        path = f"/s/{service}@{authority}{target.raw_path.decode('ascii')}"
        return base_url, path.encode("ascii") if PLAIN_NAME.fullmatch(service) else self._origin + path

    async def aclose(self) -> None:
        """Close the clients (cutting any call still in flight), let the proxy record each call it
        was carrying (bounded by ``RECORD_WAIT``), then stop the proxy: no call goes unrecorded."""
        for client in (self._base_url, self._forward):
            if client is not None:
                await client.aclose()
        if self._pending:
            await asyncio.wait(list(self._pending.values()), timeout=RECORD_WAIT)
        if self._proxy is not None:
            await self._proxy.stop()
        self._proxy = self._base_url = self._forward = self._in_process = None

    def redactor(self, service: str) -> ServiceRedactor | None:
        """The redactors of the service's secret as the vault holds it now; None once the service is gone.

        Asked as a request leaves and again as its answer comes: the answer may quote any of them
        (the proxy may refresh an OAuth token before injecting it; a 401 refreshes it, or a
        rotation replaces it, while the answer is on its way).
        """
        if self._redactors is None:
            from clavis_mcp.vault.redaction.service import ServiceRedactors

            self._redactors = ServiceRedactors(self.vault)
        snapshot = self.vault.snapshot()
        return self._redactors.for_service(snapshot, service) if service in snapshot.secrets else None

    @property
    def proxy_running(self) -> bool:
        return self._proxy is not None


def built_fields(
    client: tuple[tuple[bytes, bytes], ...], method: str, fields: list[tuple[str, str]], body: bytes
) -> tuple[tuple[bytes, bytes], ...]:
    """A request's header fields as httpx's client builds them (``build_request``), from the
    ``client``'s Host field and default headers, the request's ``fields`` and body: a field of the
    request replaces the defaults of its name; a body gives a Content-Length unless one is set, and
    a POST, PUT or PATCH without one says 0; the Host field and that 0 lead, as httpx puts them."""
    host, *defaults = client
    own = [(name.encode("ascii"), value.encode("ascii")) for name, value in fields]
    replaced = {name.lower() for name, _ in own}
    merged = [field for field in defaults if field[0].lower() not in replaced] + own
    names = {name.lower() for name, _ in merged}
    if body and b"content-length" not in names:
        merged.append((b"Content-Length", b"%d" % len(body)))
        names.add(b"content-length")
    leading = [] if b"host" in names else [host]
    if method in ("POST", "PUT", "PATCH") and not names & {b"content-length", b"transfer-encoding"}:
        leading.append((b"Content-Length", b"0"))
    return (*leading, *merged)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    return next((v for k, v in headers if k.lower() == name), None)


def _with_record(fetched: Fetched, record: Record | None) -> Fetched:
    """The response with the audit record's id and redaction count: the same figures as the log,
    also where the headers left before the record existed (a streamed body)."""
    if record is None:
        return fetched
    return replace(fetched, record=record, audit_id=record.get("id"), redactions=record.get("redactions") or 0)


async def _record_of(recorded: asyncio.Future[Record]) -> Record | None:
    """The audit record of a call: already there for an answer (written before the response or its
    last chunk went out); for a failure, once the proxy has noticed it (bounded by ``RECORD_WAIT``)."""
    try:
        return await asyncio.wait_for(asyncio.shield(recorded), RECORD_WAIT)
    except TimeoutError:
        return None
