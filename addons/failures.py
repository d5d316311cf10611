"""What went wrong when a flow failed, in the audit's words: the cause, never a guess of success.

mitmproxy reports a failed flow through its ``error`` hook with a free-text message (its own,
the TLS library's, the kernel's, or our dial guard's). The audit log needs a closed vocabulary
a reviewer can filter on (``clavis-mcp audit --decision error``) and call_service needs the
cause and the fix, so each message is sorted here into one cause. A pure function: the
table of messages in ``tests/addons/test_failures.py`` is the specification.
"""

from __future__ import annotations

from dataclasses import dataclass

from clavis_mcp.vault.audit.log import ERROR, REFUSED

TLS, DNS, CONNECT, RESET, UPSTREAM_TIMEOUT, CLIENT_GAVE_UP = (
    "tls", "dns", "connect", "reset", "upstream timeout", "client gave up",
)  # fmt: skip
BAD_RESPONSE, TOO_LARGE, UPSTREAM_FAILED = "bad response", "too large", "upstream error"
CAUSES = (TLS, DNS, CONNECT, RESET, UPSTREAM_TIMEOUT, CLIENT_GAVE_UP, BAD_RESPONSE, TOO_LARGE, UPSTREAM_FAILED)
DIAL_REFUSAL = "clavis-mcp refused to dial"  # the dial guard's prefix (addons/dial_guard.py)

# (cause, fragments of the message that mean it), first match wins; compared in lower case.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (DNS, ("does not resolve", "resolves to no address", "name or service not known", "getaddrinfo",
           "nodename nor servname", "temporary failure in name resolution")),
    (TLS, ("certificate", "tls", "ssl", "handshake")),
    (CONNECT, ("connect call failed", "connection refused", "errno 111", "unreachable", "no route to host",
               "errno 113", "errno 101")),
    (UPSTREAM_TIMEOUT, ("timed out", "timeout", "errno 110")),
    (RESET, ("server closed connection", "connection reset", "errno 104", "broken pipe", "peer closed",
             "incomplete", "server disconnected")),
    (CLIENT_GAVE_UP, ("client disconnected", "connection closed")),
    (TOO_LARGE, ("body_size_limit", "too large")),
    (BAD_RESPONSE, ("protocol error", "cannot parse", "unexpected server response", "invalid", "trailers")),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Failure:
    decision: str  # ERROR, or REFUSED for a dial the guard refused on policy (a private address)
    cause: str  # one of CAUSES, or "policy" for a refusal
    reason: str  # "<cause>: <what the engine said>", as the audit records it


def classify(message: str, decision: str | None = None) -> Failure:
    """The failure a flow's error ``message`` describes. ``decision`` is what the stages decided
    before it failed: a dial refused on policy stays ``refused``; anything else that failed is an
    ``error`` (never ``injected``: the credential may have left, but no answer came back)."""
    lowered = message.lower()
    cause = next((c for c, fragments in _RULES if any(f in lowered for f in fragments)), UPSTREAM_FAILED)
    if DIAL_REFUSAL in message:
        detail = message[message.index(DIAL_REFUSAL) :]
        if cause != DNS:
            return Failure(REFUSED, "policy", detail)
        message = detail
    elif decision == REFUSED:
        return Failure(REFUSED, "policy", message)
    return Failure(ERROR, cause, f"{cause}: {message}" if message else cause)
