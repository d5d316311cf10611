"""Destination check: decide which service (if any) owns where a request is going.

One canonical spelling of the destination is computed once and recorded on the flow; every
later step (injection, audit, dialling) uses it. The Host header, the CONNECT target and the
TLS SNI must agree, or the request is refused with 421 before any credential is involved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mitmproxy import http

from vault import Snapshot, UnknownService, Vault, canonical_host, is_public_address
from vault.service import Service

from .flowmeta import DESTINATION, SELECT_HEADER, SERVICE, STARTED, is_settled, refuse

REFUSED_METHODS = frozenset({"TRACE", "TRACK"})


@dataclass(frozen=True, slots=True)
class Verdict:
    service: Service | None
    status: int = 0
    reason: str = ""


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
) -> Verdict:
    """The whole destination policy as a pure function of what the proxy saw."""
    if method.upper() in REFUSED_METHODS:
        return Verdict(None, 405, f"method {method} is not allowed through clavis-mcp")
    default_port = 443 if scheme == "https" else 80
    try:
        host = canonical_host(host)
        if host_header is not None:
            header_host, header_port = split_authority(host_header, default_port)
            if (header_host, header_port) != (host, port):
                return Verdict(None, 421, f"Host header {host_header!r} does not match the destination {host}")
        if sni is not None and canonical_host(sni) != host:
            return Verdict(None, 421, f"TLS server name {sni!r} does not match the destination {host}")
    except ValueError as exc:
        return Verdict(None, 400, f"malformed destination: {exc}")
    if selected is not None:
        try:
            service = snapshot.service(selected)
        except UnknownService:
            return Verdict(None, 403, f"unknown service {selected!r}")
        if not service.owns(host, port, scheme):
            return Verdict(None, 403, f"{scheme}://{host}:{port} is not a host of service {selected!r}")
    else:
        owner = snapshot.owner_of(host, port, scheme)
        if owner is None:
            return Verdict(None, 403, f"no service is registered for {scheme}://{host}:{port}")
        service = owner
    if not service.local and not is_public_address(host):
        return Verdict(
            None, 403, f"{host} is a private or loopback address; only services added with --local may use it"
        )
    return Verdict(service)


class DestinationCheck:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

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
        if not any(snapshot.owner_of(host, port, scheme) for scheme in ("https", "http")):
            refuse(flow, 403, f"no service is registered for {host}:{port}")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.metadata.setdefault(STARTED, time.monotonic())
        if is_settled(flow):
            return
        request = flow.request
        selected = request.headers.get(SELECT_HEADER)
        request.headers.pop(SELECT_HEADER, None)
        verdict = decide(
            self._vault.snapshot(),
            method=request.method,
            scheme=request.scheme,
            host=request.host,
            port=request.port,
            host_header=request.host_header,
            sni=flow.client_conn.sni if flow.client_conn.tls else None,
            selected=selected,
        )
        if verdict.service is None:
            refuse(flow, verdict.status, verdict.reason)
            return
        flow.metadata[SERVICE] = verdict.service.name
        flow.metadata[DESTINATION] = (request.scheme, canonical_host(request.host), request.port)
