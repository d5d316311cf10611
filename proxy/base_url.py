"""Base-URL mode: plain HTTP on loopback, addressed to a service by name, sent on as HTTPS.

An SDK whose base URL is ``http://127.0.0.1:PORT/s/<service>/v1`` sends its requests to the
proxy itself, with no TLS hop and no CA to trust. Such a connection is served by the base-URL
front (:mod:`.base_url_front`, chosen per connection by :mod:`.peek`), not by mitmproxy's engine,
but through the same pipeline: its first stage, here, rewrites the request to the absolute
upstream URL (``https://<service's host>/v1/...``) and authenticates the agent by its key, before
any other stage looks at it. Every later stage then judges the rewritten request exactly as it
judges one from a CONNECT tunnel: the destination check sees the upstream, injection,
redaction, rate limits and audit are unchanged. A request that reaches the engine instead (a
``/s/`` path on a connection that began as a proxy connection) is not base-URL: it goes to
:class:`ClientAuth` as any other request.

Request forms (the service's host is its first exact host; ``@host[:port]`` picks another of its
hosts, for services with several or with only wildcard hosts):

- ``/s/<service>[@<host>]/<path>`` with the agent key in ``X-Clavis-Agent``, ``Authorization``
  (``Bearer``/``token``, as SDKs send their API key) or ``x-api-key``;
- ``/a/<agent key>/s/<service>[@<host>]/<path>`` for tools that take only a URL.

The agent key is the agent's proxy token. Every header that carries it is removed and the path
form is cut off before anything is recorded or sent, so it reaches neither the upstream nor the
audit. A request without a valid key is answered 401 here; nothing is dialled.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import unquote_plus

from mitmproxy import ctx, http
from mitmproxy.net.http import url

from clavis_mcp.addons.client_auth import PROXY_AUTH_FIELD, ClientAuth, key_digest, token_digest
from clavis_mcp.addons.destination import is_loopback_host
from clavis_mcp.addons.flowmeta import CLIENT, SERVICE, flow_snapshot, flow_tokens, refuse
from clavis_mcp.addons.header_fields import drop_headers
from clavis_mcp.vault import UnknownService, Vault
from clavis_mcp.vault.service import Service

SERVICE_PREFIX = "/s/"
AGENT_PREFIX = "/a/"
AGENT_HEADER = "X-Clavis-Agent"
KEY_NAMES = (b"x-clavis-agent", b"authorization", b"x-api-key")  # where SDKs put their API key, in order
DROPPED = frozenset({b"x-clavis-agent", PROXY_AUTH_FIELD, b"host"})
KEY_SCHEMES = ("bearer ", "token ")
MARK = "clavis.base_url"  # flow.metadata: the service the request named in its URL
FRONT = "clavis.base_url_front"  # flow.metadata: the flow came from the base-URL front


class Target(NamedTuple):
    """What a base-URL path names: the agent key in the path (if any), the service, a host choice
    (``host[:port]`` or empty) and the upstream path with its query."""

    key: str | None
    service: str
    host: str
    path: str


def parse_target(path: str) -> Target | None:
    """Split a base-URL request target; None if it is not one, ValueError if it is malformed."""
    key = None
    if path.startswith(AGENT_PREFIX):
        key, sep, path = path[len(AGENT_PREFIX) :].partition("/")
        path = "/" + path
        if not key or not sep or not path.startswith(SERVICE_PREFIX):
            raise ValueError("an agent-key URL is /a/<agent key>/s/<service>/<path>")
    elif not path.startswith(SERVICE_PREFIX):
        return None
    rest = path[len(SERVICE_PREFIX) :]
    cut = rest.find("/")  # the ``<service>[@<host>]`` ends at the first "/" or "?"
    query = rest.find("?", 0, cut if cut >= 0 else len(rest))
    if query >= 0 or cut < 0:
        cut = query if query >= 0 else len(rest)
    name, rest = rest[:cut], rest[cut:]
    service, _, host = name.partition("@")
    if not service:
        raise ValueError("a base-URL request is /s/<service>/<path>: the service name is missing")
    if not rest.startswith("/"):
        rest = "/" + rest
    return Target(key, service, host, rest)


def without_key(path: str) -> str:
    """``path`` with the key of an ``/a/<agent key>/`` prefix blanked, for a malformed one."""
    if not path.startswith(AGENT_PREFIX):
        return path
    _, sep, rest = path[len(AGENT_PREFIX) :].partition("/")
    return f"{AGENT_PREFIX}-/{rest}" if sep else f"{AGENT_PREFIX}-"


def choose_host(service: Service, choice: str) -> tuple[str, int]:
    """The upstream ``(host, port)``: the one chosen (it must be the service's), else its first exact host."""
    if choice:
        try:
            host, port = _checked_authority(choice)
        except ValueError:
            raise ValueError(f"{choice!r} is not a host[:port]") from None
        port = port or 443
        if not service.owns(host, port):
            hosts = ", ".join(map(str, service.hosts))
            raise LookupError(f"{choice} is not a host of service {service.name!r} (its hosts: {hosts})")
        return host, port
    for rule in service.hosts:
        if not rule.wildcard:
            return rule.host, rule.port or 443
    raise LookupError(
        f"service {service.name!r} has only wildcard hosts; name one in the URL: /s/{service.name}@<host>/..."
    )


@functools.lru_cache(maxsize=256)
def _checked_authority(text: str) -> tuple[str, int | None]:
    """``host[:port]`` as mitmproxy checks an authority (ValueError if malformed); cached, as the
    gateway names the same destination in call after call and the IDNA checks are the cost."""
    return url.parse_authority(text, check=True)


@functools.lru_cache(maxsize=256)
def _host_field(host: str, port: int) -> bytes:
    """The Host header for an upstream (an IPv6 literal in brackets, as RFC 9110 writes an
    authority); cached, as the IDNA encoding costs more than the rest of the rewrite."""
    named = f"[{host}]" if ":" in host else host
    return url.hostport("https", named, port).encode("idna")


def agent_of(key: str, tokens: Mapping[str, str]) -> str | None:
    """The agent whose token is ``key``, compared in constant time against each."""
    wanted = key_digest(key)
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(wanted, token_digest(token)) and token:
            found = name
    return found


def read_fields(fields: Sequence[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], list[tuple[bytes, bytes]]]:
    """One pass over the raw header fields (mitmproxy's lookups scan them once per name): the first
    value of each header an SDK puts its API key in, and the fields without the proxy's own
    credential headers."""
    found: dict[bytes, bytes] = {}
    kept: list[tuple[bytes, bytes]] = []
    for field in fields:
        lowered = field[0].lower()
        if lowered in KEY_NAMES and lowered not in found:
            found[lowered] = field[1]
        if lowered not in DROPPED:
            kept.append(field)
    return found, kept


def presented_key(found: Mapping[bytes, bytes]) -> str | None:
    """The agent key as an SDK sends its API key (``X-Clavis-Agent``, then ``Authorization``
    with ``Bearer``/``token``, then ``x-api-key``) among the ``found`` values (:func:`read_fields`), or None."""
    for name in KEY_NAMES:
        value = found.get(name)
        if value is None:
            continue
        text = value.strip().decode("latin-1")
        if name == b"authorization":  # after the scheme and its space (each scheme ends with one)
            text = text[text.index(" ") + 1 :].strip() if text.lower().startswith(KEY_SCHEMES) else ""
        if text:
            return text
    return None


def _without_key(fields: list[tuple[bytes, bytes]], key: bytes) -> list[tuple[bytes, bytes]]:
    """``fields`` without any header carrying ``key``: the agent's key never reaches the upstream.
    (``find``, not ``in``: a bytes ``in`` first tries its operand as an integer and catches the
    TypeError, ten times the cost of the search in a header value.)"""
    return [field for field in fields if field[1].find(key) < 0] if key else fields


def query_without_key(path: str, key: str) -> str:
    """``path`` without the query parameters whose value is the agent's key (an SDK that sends
    its API key as ``?key=`` sends the agent's token there too; the upstream gets the service's
    own credential instead). A key anywhere else in the query is refused (ValueError): it would
    reach the upstream and the audit."""
    base, mark, query = path.partition("?")
    if not mark:
        return path
    kept = [part for part in query.split("&") if unquote_plus(part.partition("=")[2]) != key]
    rest = "&".join(kept)
    if key in unquote_plus(rest):
        raise ValueError("the agent key appears in the query string; send it as the API key header instead")
    return f"{base}?{rest}" if kept else base


class BaseUrlFront:
    """Takes the place of :class:`ClientAuth` at the head of the pipeline: requests of the base-URL
    front are rewritten and authenticated here, every other request is handed to ``client_auth``."""

    def __init__(self, client_auth: ClientAuth, tokens: Callable[[], Mapping[str, str]], vault: Vault) -> None:
        self._client_auth = client_auth
        self._tokens = tokens
        self._vault = vault
        self.proxy_ports: frozenset[int] = frozenset()

    def running(self) -> None:
        server = ctx.master.addons.get("proxyserver")
        if server is not None:
            self.proxy_ports = frozenset(address[1] for address in server.listen_addrs())

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._client_auth.http_connect(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.get(FRONT):
            self._client_auth.requestheaders(flow)
            return
        request = flow.request
        path = request.path
        try:
            target = parse_target(path)
        except ValueError as exc:
            drop_headers(request.headers, PROXY_AUTH_FIELD)
            request.path = without_key(path)  # the audit records the path
            refuse(flow, 400, f"{exc}")
            return
        if target is None:
            drop_headers(request.headers, PROXY_AUTH_FIELD)
            refuse(flow, 400, "not a base-URL request: this connection carries /s/<service>/<path> requests only; "
                              "send proxy requests on a connection of their own")  # fmt: skip
            return
        request.path = target.path  # the path form of the key is gone before anything records the path
        if not (request.port in self.proxy_ports and is_loopback_host(request.host)):
            drop_headers(request.headers, PROXY_AUTH_FIELD)
            refuse(flow, 421, "a base-URL request must name the proxy on loopback in its Host header "
                              f"(127.0.0.1:{min(self.proxy_ports, default=0)})")  # fmt: skip
            return
        self._serve(flow, target)

    def _serve(self, flow: http.HTTPFlow, target: Target) -> None:
        """Authenticate, then find the service and its host; every exit leaves the fields without
        the proxy's credential headers and without the key."""
        request = flow.request
        found, fields = read_fields(request.headers.fields)
        key = target.key or presented_key(found)
        agent = agent_of(key, flow_tokens(flow, self._vault, self._tokens)) if key else None
        fields = _without_key(fields, key.encode("latin-1", "replace") if key else b"")
        if agent is None or key is None:
            request.headers.fields = tuple(fields)
            what = "no agent key" if not key else "an unknown or revoked agent key"
            refuse(flow, 401, f"base-URL request with {what}: send the agent's token as the API key "
                              "(see `clavis-mcp env --base-urls --agent NAME`)",
                   {"WWW-Authenticate": 'Bearer realm="clavis-mcp"'})  # fmt: skip
            return
        flow.metadata[CLIENT] = agent
        try:
            path = query_without_key(target.path, key)
        except ValueError as exc:
            request.headers.fields = tuple(fields)
            request.path = target.path.partition("?")[0]  # the audit records the path
            refuse(flow, 400, str(exc))
            return
        if path != target.path:
            request.path = path
        try:
            service = flow_snapshot(flow, self._vault).service(target.service)
        except UnknownService:
            request.headers.fields = tuple(fields)
            refuse(flow, 404, f"no service named {target.service!r}; `clavis-mcp list` shows the services")
            return
        try:
            host, port = choose_host(service, target.host)
        except (ValueError, LookupError) as exc:
            request.headers.fields = tuple(fields)
            refuse(flow, 400 if isinstance(exc, ValueError) else 403, str(exc))
            return
        # The judged destination, set once: Host first, as HTTP/1.1 clients send it (an IPv6
        # literal in brackets, as RFC 9110 writes an authority). The request's own fields are
        # written as its setters would write them, without their encoders.
        request.headers.fields = ((b"Host", _host_field(host, port)), *fields)
        data = request.data
        data.authority = b""
        data.scheme = b"https"
        data.host = host
        data.port = port
        flow.metadata[MARK] = service.name


class BaseUrlOwner:
    """Runs right after the destination check: the service that owns the rewritten destination
    (by host and path) must be the one the URL named, or the request would carry another service's
    credential under this one's name."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        named = flow.metadata.get(MARK)
        if named is None or flow.response is not None:
            return
        owner = flow.metadata.get(SERVICE)
        if owner != named:
            refuse(flow, 403, f"the path {flow.request.path.partition('?')[0]} on this host belongs to service "
                              f"{owner!r}, not {named!r}")  # fmt: skip


def with_base_url(stages: list[object], tokens: Callable[[], Mapping[str, str]], vault: Vault) -> list[object]:
    """``stages`` (from ``default_addons``) with base-URL mode: the front in place of ClientAuth,
    the owner check right after the destination check."""
    out: list[object] = []
    for stage in stages:
        if isinstance(stage, ClientAuth):
            out.append(BaseUrlFront(stage, tokens, vault))
            continue
        out.append(stage)
        if type(stage).__name__ == "DestinationCheck":
            out.append(BaseUrlOwner())
    return out
