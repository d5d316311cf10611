"""Proxy client authentication: only holders of a proxy token may use the proxy.

Tokens are compared in constant time. A CONNECT that authenticates vouches for every
request inside its tunnel; plain-HTTP proxy requests authenticate one by one. The
``Proxy-Authorization`` header is removed before anything else looks at the flow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import weakref
from collections.abc import Callable, Mapping

from mitmproxy import connection, http

from .flowmeta import CLIENT, refuse

PROXY_AUTH = "Proxy-Authorization"


def parse_basic(value: str) -> tuple[str, str] | None:
    """``Basic base64(user:token)`` to ``(user, token)``; None for anything else."""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, token = decoded.partition(":")
    return (user, token) if sep else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


class ClientAuth:
    """``tokens`` maps a client name to its token; it is called on every request, so a revocation
    in the vault takes effect at once, even inside a tunnel that was opened before it."""

    def __init__(self, tokens: Callable[[], Mapping[str, str]]) -> None:
        self._tokens = tokens
        self._tunnels: weakref.WeakKeyDictionary[connection.Client, str] = weakref.WeakKeyDictionary()

    def authenticate(self, header: str) -> str | None:
        parsed = parse_basic(header)
        if parsed is None:
            return None
        user, token = parsed
        expected = self._tokens().get(user)
        # Digests make both sides the same length, so the comparison time says nothing.
        ok = hmac.compare_digest(_digest(token), _digest(expected or ""))
        return user if ok and expected else None

    def http_connect(self, flow: http.HTTPFlow) -> None:
        client = self._check(flow)
        if client is not None:
            self._tunnels[flow.client_conn] = client

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        client = self._tunnels.get(flow.client_conn)
        if client is None:
            self._check(flow)
        elif client not in self._tokens():
            # Revoked while its tunnel was open: the next request inside it is refused.
            del self._tunnels[flow.client_conn]
            flow.request.headers.pop(PROXY_AUTH, None)
            refuse(flow, 407, f"the proxy credential of {client!r} was revoked; get a new one with `clavis-mcp env`")
        else:
            flow.metadata[CLIENT] = client
            flow.request.headers.pop(PROXY_AUTH, None)

    def _check(self, flow: http.HTTPFlow) -> str | None:
        header = flow.request.headers.get(PROXY_AUTH, "")
        flow.request.headers.pop(PROXY_AUTH, None)
        client = self.authenticate(header)
        if client is None:
            refuse(
                flow,
                407,
                "proxy authentication required: use the proxy URL from `clavis-mcp env`",
                {"Proxy-Authenticate": 'Basic realm="clavis-mcp"'},
            )
            return None
        flow.metadata[CLIENT] = client
        return client
