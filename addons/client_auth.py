"""Proxy client authentication: only holders of a proxy token may use the proxy.

Tokens are compared in constant time. A CONNECT that authenticates vouches for every
request inside its tunnel; plain-HTTP proxy requests authenticate one by one. The
``Proxy-Authorization`` header is removed before anything else looks at the flow.

A request with no credential at all is the first half of the Basic challenge round (git,
curl and others send their first request bare and retry with the credential after the 407):
it is audited as ``challenge``, not as a refusal. A credential that fails is ``refused``,
and the reason names the agent it claimed to be; a token this proxy once accepted for an
agent since revoked is recognised as that agent's, so the record names the revoked agent.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import weakref
from collections.abc import Mapping

from mitmproxy import connection, http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.proxy_config import Tokens

from .flowmeta import CLIENT, DECISION, flow_tokens, refuse
from .header_fields import drop_headers, header_values

PROXY_AUTH = "Proxy-Authorization"
PROXY_AUTH_FIELD = PROXY_AUTH.lower().encode()
CHALLENGE = "challenge"  # audit decision: a bare first request, answered with the 407 that asks for the credential


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


def _revoked(agent: str) -> str:
    return f"agent {agent!r} was revoked; create or choose another agent (`clavis-mcp agent add NAME`)"


def key_digest(value: str) -> bytes:
    """A fixed-length digest, so that keys of every length compare in the same time: every check
    of an agent's key (here, and the base-URL front's). BLAKE2s is built into Python: half the
    time of OpenSSL's SHA-256 in the running proxy, where its object set-up is most of the cost."""
    return hashlib.blake2s(value.encode()).digest()


token_digest = functools.lru_cache(maxsize=64)(key_digest)  # the agents' own tokens: the same in every request


class ClientAuth:
    """``tokens`` maps a client name to its token; it is called on every request, so a revocation
    in the vault takes effect at once, even inside a tunnel that was opened before it."""

    def __init__(self, tokens: Tokens, vault: Vault | None = None) -> None:
        self._tokens = tokens
        self._vault = vault  # given: tokens kept in it are read as of the flow's snapshot (flowmeta.flow_tokens)
        # Each tunnel's agent and the digest of the token its CONNECT presented: a request inside it
        # is admitted only while that agent's token is still that one, so an agent revoked and added
        # again under its name (a new token) does not keep a tunnel the old token opened.
        self._tunnels: weakref.WeakKeyDictionary[connection.Client, tuple[str, bytes]] = weakref.WeakKeyDictionary()
        # The connection asked about last and its entry in _tunnels (None: none): a keep-alive
        # tunnel's requests follow one another, and a lookup in _tunnels hashes and compares the
        # connection in Python, several times this check. Weak: it never keeps a connection alive
        # nor takes a new one for a dead one. Every change of _tunnels forgets it.
        self._last: tuple[weakref.ref[connection.Client], tuple[str, bytes] | None] | None = None
        self._seen: dict[str, bytes] = {}  # digest of every token accepted, by agent: names a revoked one

    def authenticate(self, header: str) -> str | None:
        admitted = self._admit(header, self._tokens())
        return admitted[0] if admitted else None

    def _current(self, flow: http.HTTPFlow) -> Mapping[str, str]:
        return self._tokens() if self._vault is None else flow_tokens(flow, self._vault, self._tokens)

    def _admit(self, header: str, tokens: Mapping[str, str]) -> tuple[str, bytes] | None:
        """The agent ``header`` authenticates and the digest of the token it presented, or None."""
        parsed = parse_basic(header)
        if parsed is None:
            return None
        user, token = parsed
        expected = tokens.get(user)
        # Digests make both sides the same length, so the comparison time says nothing.
        given = key_digest(token)
        if hmac.compare_digest(given, token_digest(expected or "")) and expected:
            self._seen[user] = given
            return user, given
        return None

    def _why_refused(self, header: str, tokens: Mapping[str, str]) -> tuple[str | None, str]:
        """The agent a failed credential proves to be (a revoked one), if any, and the reason in words."""
        parsed = parse_basic(header)
        if parsed is None:
            return None, "proxy authentication failed: the Proxy-Authorization header is not Basic user:token"
        user, token = parsed
        former = self._seen.get(user)
        if former is not None and user not in tokens and hmac.compare_digest(former, key_digest(token)):
            return user, _revoked(user)
        return None, (f"proxy authentication failed for agent {user!r}: unknown agent, revoked, or a wrong token; "
                      "use the proxy URL from `clavis-mcp env`")  # fmt: skip

    def http_connect(self, flow: http.HTTPFlow) -> None:
        admitted = self._check(flow)
        if admitted is not None:
            self._tunnels[flow.client_conn] = admitted
            self._last = None

    def _tunnel(self, conn: connection.Client) -> tuple[str, bytes] | None:
        """The agent whose CONNECT opened this connection's tunnel, and its token's digest, if one did."""
        last = self._last
        if last is not None and last[0]() is conn:
            return last[1]
        tunnel = self._tunnels.get(conn)
        self._last = (weakref.ref(conn), tunnel)
        return tunnel

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        tunnel = self._tunnel(flow.client_conn)
        if tunnel is None:
            self._check(flow)
            return
        client, presented = tunnel
        current = self._current(flow).get(client)
        if current is None or not hmac.compare_digest(presented, token_digest(current)):
            # Revoked while its tunnel was open (or revoked and added again: another token): the
            # next request inside it is refused.
            del self._tunnels[flow.client_conn]
            self._last = None
            drop_headers(flow.request.headers, PROXY_AUTH_FIELD)
            refuse(
                flow, 407, f"agent {client!r} was revoked; create or choose another agent (`clavis-mcp agent add NAME`)"
            )
            flow.metadata[CLIENT] = client  # authenticated when its tunnel opened: the record names it
        else:
            flow.metadata[CLIENT] = client
            drop_headers(flow.request.headers, PROXY_AUTH_FIELD)

    def _check(self, flow: http.HTTPFlow) -> tuple[str, bytes] | None:
        header = header_values(flow.request.headers, PROXY_AUTH_FIELD).get(PROXY_AUTH_FIELD, "")
        drop_headers(flow.request.headers, PROXY_AUTH_FIELD)
        tokens = self._current(flow)
        admitted = self._admit(header, tokens)
        if admitted is None:
            challenge = {"Proxy-Authenticate": 'Basic realm="clavis-mcp"'}
            if not header:
                refuse(flow, 407, "proxy authentication required: use the proxy URL from `clavis-mcp env`", challenge)
                flow.metadata[DECISION] = CHALLENGE
                return None
            revoked, reason = self._why_refused(header, tokens)
            refuse(flow, 407, reason, challenge)
            if revoked is not None:
                flow.metadata[CLIENT] = revoked
            return None
        flow.metadata[CLIENT] = admitted[0]
        return admitted
