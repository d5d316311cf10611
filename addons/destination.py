"""Destination check: decide which service (if any) owns where a request is going.

One canonical spelling of the destination is computed once and recorded on the flow; every
later step (injection, audit, dialling) uses it, and the request's own host is rewritten to
it so what was judged is what is sent. The Host header, the CONNECT target and the TLS SNI
must agree, or the request is refused with 421 before any credential is involved.

Hosts that belong to no service are forwarded opaquely if the user listed them for passthrough,
or, on a proxy built with ``pass_other_hosts`` (the standalone proxy agents use), for any agent
not added with ``--deny-other-hosts``: TLS is not intercepted and no credential is ever added.
A host some service owns is never passed through, and a private or loopback address is never
passed through by default (the dial guard also refuses names that resolve to one). Otherwise
the request is refused with a reason the agent can read. TLS is intercepted only for service hosts.

Several services may share a host (a personal and a work key for one provider). call_service
names its service; a proxy agent's record says which one it means (``agent use``); a host still
claimed by several services is refused with a message naming them.
"""

from __future__ import annotations

import functools
import ipaddress
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from mitmproxy import connection, ctx, http, tls

from clavis_mcp.vault import HostRule, Snapshot, UnknownService, Vault, canonical_host, is_public_address
from clavis_mcp.vault.agents import Agent, agent_policies
from clavis_mcp.vault.request_path import normalise_path
from clavis_mcp.vault.service import Service

from .flowmeta import (
    CLIENT,
    DECISION,
    DESTINATION,
    REASON,
    SELECT_HEADER,
    SERVICE,
    STARTED,
    flow_snapshot,
    is_settled,
    refuse,
)
from .header_fields import drop_headers, header_values
from .internal_headers import strip_internal

REFUSED_METHODS = frozenset({"TRACE", "TRACK"})
OTHER_HOST_REASON = (
    "no service owns this host: passed through without interception or credential "
    "(an agent added with --deny-other-hosts is refused instead)"
)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
# decide() is a pure function of the snapshot and what the proxy saw: its verdicts are kept per
# snapshot (a vault change makes a new one), so a repeated request is judged by one lookup.
VERDICTS = "destination:verdicts"
SELECT_FIELD = SELECT_HEADER.lower().encode()
HOST_FIELD = b"host"
VERDICTS_KEPT = 4096  # distinct requests judged per snapshot before the kept verdicts are dropped


@dataclass(frozen=True, slots=True)
class Verdict:
    service: Service | None
    status: int = 0
    reason: str = ""
    passthrough: bool = False


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` to canonical ``(host, port)``; ValueError if malformed."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif authority.count(":") == 1:
        host, port_text = authority.split(":")
    else:
        host, port_text = authority, ""
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"invalid port in {authority!r}")
    return canonical_host(host), int(port_text) if port_text else default_port


def origin_form(method: str, target: str, scheme: str) -> tuple[str, str]:
    """The request target as ``(authority, origin-form)``; the authority is empty unless the target
    was an absolute URL. ValueError for a target that is neither (``OPTIONS *`` aside) or holds a
    fragment.

    HTTP/2 carries the target in ``:path`` as the client wrote it (curl's ``--request-target``
    writes an absolute URL there), and an HTTP/1 upstream reads an absolute URL's authority over
    ``Host`` (RFC 9112 §3.2.2). A ``#`` is never sent in a request: servers and WHATWG parsers cut
    the path there (``/v1/public/..#/admin`` is ``/v1/`` to them), so the policy would judge
    another path than the one served."""
    if "#" in target:
        raise ValueError("the request target holds a fragment ('#'), which is never sent in a request and which "
                         "servers cut the path at; leave the fragment out or write '#' as '%23'")  # fmt: skip
    if target.startswith("/") or (target == "*" and method.upper() == "OPTIONS"):
        return "", target
    given_scheme, separator, rest = target.partition("://")
    if not separator or given_scheme.lower() != scheme:
        raise ValueError(f"the request target must be a path starting with '/' or an absolute {scheme}:// URL")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    path = rest[len(authority) :]
    if not authority:
        raise ValueError("the request target is an absolute URL without a host")
    return authority, path if path.startswith("/") else "/" + path


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str) -> bool:
    """``localhost`` and friends, 127.0.0.0/8, ::1, 0.0.0.0 and ::: where the proxy itself listens.
    Cached: a base-URL request asks it of the proxy's own address every time."""
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def is_passthrough(rules: Sequence[HostRule], host: str, port: int, default_port: int = 443) -> bool:
    return any(rule.matches(host, port, default_port) for rule in rules)


def decide(
    snapshot: Snapshot,
    *,
    method: str,
    scheme: str,
    host: str,
    port: int,
    host_header: str | None,
    sni: str | None,
    selected: str | None,
    authority: str = "",
    path: str | None = None,
    passthrough: Sequence[HostRule] = (),
    proxy_ports: frozenset[int] = frozenset(),
    pass_other_hosts: bool = False,
    agent: Agent | None = None,
) -> Verdict:
    """The whole destination policy as a pure function of what the proxy saw.

    ``authority`` is the request target's own authority (absolute-form in HTTP/1, ``:authority``
    in HTTP/2), empty for origin-form: RFC 9112 §3.2.2 lets it override ``Host``, and shared
    front ends route by it, so it must name the judged destination too, as must an absolute URL
    in ``path`` (see :func:`origin_form`). ``path`` (the request target, query included) tells
    apart services that share a host by path prefix; it is judged in its normalised form, as the
    request policy will send it. ``pass_other_hosts``: a host no service owns passes untouched
    unless ``agent`` denies other hosts; the services the agent uses decide among services
    sharing a host.
    """
    uses = frozenset(agent.uses) if agent is not None else frozenset()
    who = agent.name if agent is not None else None
    if method.upper() in REFUSED_METHODS:
        return Verdict(None, 405, f"method {method} is not allowed through clavis-mcp")
    default_port = 443 if scheme == "https" else 80
    target_authority = ""
    if path is not None:
        try:
            target_authority, path = origin_form(method, path, scheme)
        except ValueError as exc:
            return Verdict(None, 400, f"request target refused: {exc}")
    try:
        host = canonical_host(host)
        if host_header is not None:
            header_host, header_port = split_authority(host_header, default_port)
            if (header_host, header_port) != (host, port):
                return Verdict(None, 421, f"Host header {host_header!r} does not match the destination {host}")
        if sni is not None and canonical_host(sni) != host:
            return Verdict(None, 421, f"TLS server name {sni!r} does not match the destination {host}")
        for given in (authority, target_authority):
            if given and split_authority(given, default_port) != (host, port):
                return Verdict(None, 421, f"request target authority {given!r} does not match the destination {host}")
    except ValueError as exc:
        return Verdict(None, 400, f"malformed destination: {exc}")
    if port in proxy_ports and is_loopback_host(host):
        return Verdict(None, 403, f"{host}:{port} is clavis-mcp's own proxy port; a request to it would loop")
    if selected is not None:
        try:
            service = snapshot.service(selected)
        except UnknownService:
            return Verdict(None, 403, f"unknown service {selected!r}")
        if not service.owns(host, port, scheme):
            return Verdict(None, 403, f"{scheme}://{host}:{port} is not a host of service {selected!r}")
        bound = [s.name for s in snapshot.owners(host, port, scheme) if s.name in uses]
        if bound and selected not in bound:  # the agent's binding is its choice on this host, not the header's
            return Verdict(None, 403, f"agent {who!r} is bound to service {bound[0]!r} on {host}, not {selected!r}")
    else:
        try:
            normalised = None if path is None else normalise_path(path.partition("?")[0])
        except ValueError as exc:
            if len(snapshot.claimants(host, port, scheme, among=uses)) > 1:  # the path decides whose credential
                return Verdict(None, 400, f"path refused: {exc}")
            normalised = None  # judged without the path; the request policy refuses what it cannot read
        found = snapshot.claimants(host, port, scheme, path=normalised, among=uses)
        if len(found) > 1:
            return Verdict(None, 403, shared_reason(found, scheme, host, port, who))
        if not found:
            if not service_host(snapshot, host, port):
                if is_passthrough(passthrough, host, port, default_port):
                    return Verdict(None, passthrough=True)
                if pass_other_hosts and not (agent is not None and agent.deny_other_hosts):
                    if is_private_host(host):
                        return Verdict(None, 403, private_passthrough_reason(scheme, host, port))
                    return Verdict(None, reason=OTHER_HOST_REASON, passthrough=True)
            if snapshot.owners(host, port, scheme):
                shown = normalised or "this path"
                return Verdict(None, 403, f"no service on {scheme}://{host}:{port} covers the path {shown}")
            return Verdict(None, 403, unowned_reason(snapshot, scheme, host, port, agent))
        service = found[0]
    if not service.local and not is_public_address(host):
        return Verdict(
            None, 403, f"{host} is a private or loopback address; only services added with --local may use it"
        )
    return Verdict(service)


def unowned_reason(snapshot: Snapshot, scheme: str, host: str, port: int, agent: Agent | None = None) -> str:
    """Why nothing owns this destination, with the hint an agent or its user can act on."""
    if any(snapshot.owners(host, port, other) for other in ("https", "http") if other != scheme):
        other = "https" if scheme == "http" else "http"
        return f"no service is registered for {scheme}://{host}:{port}; its service expects {other}://"
    if agent is not None and agent.deny_other_hosts:
        return (
            f"no service is registered for {scheme}://{host}:{port}, and agent {agent.name!r} was added with "
            "--deny-other-hosts; add a service with `clavis-mcp add`, or use `clavis-mcp proxy --passthrough HOST`"
        )
    return (
        f"no service is registered for {scheme}://{host}:{port}; add one with `clavis-mcp add`, "
        "or let it through untouched with `clavis-mcp proxy --passthrough HOST`"
    )


def shared_reason(found: Sequence[Service], scheme: str, host: str, port: int, agent: str | None) -> str:
    """Several services claim this destination and nothing says which one is meant."""
    names = ", ".join(repr(s.name) for s in found)
    who = agent or "NAME"
    return (
        f"{scheme}://{host}:{port} belongs to several services ({names}) and agent {who!r} is bound to none "
        f"of them; choose one with `clavis-mcp agent use {who} SERVICE`, or name the service in call_service"
    )


def service_host(snapshot: Snapshot, host: str, port: int) -> bool:
    """A host some service owns, on this port or the default ones: never passed through, so a
    client that forgot the scheme or port its service uses is told so instead of going without."""
    return any(snapshot.owners(host, p, scheme) for p in {port, 443, 80} for scheme in ("https", "http"))


def is_private_host(host: str) -> bool:
    """A loopback name or a non-public address literal: never passed through by default."""
    return is_loopback_host(host) or not is_public_address(host)


def private_passthrough_reason(scheme: str, host: str, port: int) -> str:
    return (
        f"no service is registered for {scheme}://{host}:{port}, and {host} is a private or loopback address, "
        "which clavis-mcp does not pass through; reach it directly (NO_PROXY) or add it as a service with --local"
    )


class DestinationCheck:
    """``passthrough``: host rules whose tunnels are forwarded opaquely when no service owns them;
    ``pass_other_hosts``: so is every other host no service owns, for agents that do not deny it."""

    def __init__(self, vault: Vault, passthrough: Sequence[HostRule] = (), pass_other_hosts: bool = False) -> None:
        self._vault = vault
        self._passthrough = tuple(passthrough)
        self._pass_other_hosts = pass_other_hosts
        self._opaque: weakref.WeakSet[connection.Client] = weakref.WeakSet()
        self.proxy_ports: frozenset[int] = frozenset()

    def running(self) -> None:
        server = ctx.master.addons.get("proxyserver")
        if server is not None:
            self.proxy_ports = frozenset(address[1] for address in server.listen_addrs())

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Refuse a tunnel to a host no service owns, before any TLS is intercepted."""
        if is_settled(flow):
            return
        snapshot = self._vault.snapshot()
        try:
            host = canonical_host(flow.request.host)
        except ValueError as exc:
            refuse(flow, 400, f"malformed destination: {exc}")
            return
        port = flow.request.port
        flow.metadata[DESTINATION] = ("https", host, port)
        if port in self.proxy_ports and is_loopback_host(host):
            refuse(flow, 403, f"{host}:{port} is clavis-mcp's own proxy port; a request to it would loop")
        elif any(snapshot.owners(host, port, scheme) for scheme in ("https", "http")):
            return
        elif service_host(snapshot, host, port):
            refuse(flow, 403, unowned_reason(snapshot, "https", host, port))
        elif is_passthrough(self._passthrough, host, port):
            self._opaque.add(flow.client_conn)
            flow.metadata[DECISION] = "passed"
            flow.metadata[REASON] = "passthrough host: tunnelled without interception or credential"
        elif self._passes_others(agent := self._agent(flow, snapshot)):
            if is_private_host(host):
                refuse(flow, 403, private_passthrough_reason("https", host, port))
                return
            self._opaque.add(flow.client_conn)
            flow.metadata[DECISION] = "passed"
            flow.metadata[REASON] = OTHER_HOST_REASON
        else:
            refuse(flow, 403, unowned_reason(snapshot, "https", host, port, agent))

    def _agent(self, flow: http.HTTPFlow, snapshot: Snapshot) -> Agent | None:
        """The authenticated agent's routing choices; a client with no agent record has none."""
        client = flow.metadata.get(CLIENT)
        if client is None:
            return None
        return agent_policies(snapshot, self._vault).get(client) or Agent(client, 0.0)

    def _passes_others(self, agent: Agent | None) -> bool:
        return self._pass_other_hosts and not (agent is not None and agent.deny_other_hosts)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Only service hosts are intercepted; a passthrough tunnel stays end-to-end encrypted."""
        if data.context.client in self._opaque:
            data.ignore_connection = True

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata.setdefault(STARTED, time.monotonic())
        if is_settled(flow):
            return
        request = flow.request
        fields = header_values(request.headers, SELECT_FIELD, HOST_FIELD)
        selected = fields.get(SELECT_FIELD)
        if selected is not None:
            drop_headers(request.headers, SELECT_FIELD)
        snapshot = flow_snapshot(flow, self._vault)
        method, scheme, host, port, path = request.method, request.scheme, request.host, request.port, request.path
        authority = request.authority
        # request.host_header from the scan above: HTTP/2 and 3 name the host in :authority first.
        http2 = request.is_http2 or request.is_http3
        host_header = authority if http2 and authority else fields.get(HOST_FIELD)
        sni = flow.client_conn.sni if flow.client_conn.tls else None
        client = flow.metadata.get(CLIENT)
        # Everything decide() is given: a verdict answers only its own inputs. This check's own
        # settings are fixed at construction (``self``, held by the key, stands for them) but for
        # the proxy ports, which are learnt when the proxy runs; the agent is the client's record
        # in this snapshot, so within the snapshot's verdicts the client's name stands for it.
        key = (self, self.proxy_ports, method, scheme, host, port, host_header, sni, selected, authority, path, client)
        verdicts: dict[tuple[object, ...], Verdict] = snapshot.derived(VERDICTS, dict)
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = decide(
                snapshot, method=method, scheme=scheme, host=host, port=port, host_header=host_header, sni=sni,
                selected=selected, authority=authority, path=path, passthrough=self._passthrough,
                proxy_ports=self.proxy_ports, pass_other_hosts=self._pass_other_hosts,
                agent=self._agent(flow, snapshot),
            )  # fmt: skip
            if len(verdicts) >= VERDICTS_KEPT:
                verdicts.clear()
            verdicts[key] = verdict
        if verdict.passthrough:
            strip_internal(request.headers)  # the agent's X-Clavis-* headers are for us, not for the host
            flow.metadata[DECISION] = "passed"
            if verdict.reason:
                flow.metadata[REASON] = verdict.reason
            flow.metadata[DESTINATION] = (scheme, canonical_host(host), port)
            return
        if verdict.service is None:
            refuse(flow, verdict.status, verdict.reason)
            return
        canonical = canonical_host(host)
        if host != canonical:
            request.host = canonical  # the canonical spelling is what is dialled and sent as Host
        if authority and request.http_version.startswith("HTTP/1"):
            request.authority = ""  # origin-form upstream: the judged Host is the only authority sent
        if not path.startswith("/"):
            request.path = origin_form(method, path, scheme)[1]  # judged above; "*" stays itself
        flow.metadata[SERVICE] = verdict.service.name
        flow.metadata[DESTINATION] = (scheme, canonical, port)
