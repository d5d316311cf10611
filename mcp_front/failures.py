"""What call_service tells the model when clavis itself, not the provider, failed the call.

The proxy records such a failure as ``decision: error`` with a reason that starts with its
cause (``tls: …``, ``dns: …``; the vocabulary is ``addons/failures.py``'s, read here from
the record since the front end never imports an addon). The model gets a tool error, never
something that looks like the provider's answer: the cause, the fix, and the audit id, so
the user can find the record (``clavis-mcp audit --decision error``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIXES = {
    "tls": "the upstream's TLS certificate is not trusted; if it is signed by a private CA, set "
    "CLAVIS_UPSTREAM_CA to that CA's PEM file in the MCP server's environment and restart it",
    "dns": "the host name does not resolve; check the URL, the service's hosts (clavis-mcp show NAME) "
    "and this machine's network",
    "connect": "nothing accepted the connection; check that the service is up and the port is right",
    "reset": "the upstream closed the connection before its answer was complete; try again",
    "upstream timeout": "the upstream did not answer in time; try again later",
    "client gave up": "no complete answer came in time; try again later (CLAVIS_CALL_TIMEOUT sets the limit)",
    "bad response": "the upstream's answer was not valid HTTP, so none of it is shown; try again later",
    "too large": "the answer is larger than clavis-mcp reads; ask for less",
    "upstream error": "the call could not be completed; try again, and see clavis-mcp audit for the details",
}
DEFAULT_CAUSE = "upstream error"


def cause_of(reason: str | None) -> str:
    """The cause a recorded reason starts with (``tls: Certificate verify failed`` is ``tls``)."""
    head = (reason or "").split(":", 1)[0].strip()
    return head if head in FIXES else DEFAULT_CAUSE


def audit_note(record: Mapping[str, Any] | None) -> str:
    """`` (audit id …)`` for a message, when the request was recorded."""
    return f" (audit id {record['id']})" if record and record.get("id") else ""


def failure_message(service: str, host: str, record: Mapping[str, Any] | None) -> str:
    """One message: what failed, where, why (the engine's words, as recorded), the fix, the audit id."""
    reason = (record or {}).get("reason") or DEFAULT_CAUSE
    cause = cause_of(reason)
    fix = FIXES[cause].replace("NAME", service)
    return f"clavis-mcp could not complete the call to {host} ({cause}): {reason}. Fix: {fix}{audit_note(record)}"


def timeout_message(host: str, timeout: float, record: Mapping[str, Any] | None) -> str:
    return (
        f"{host} did not answer within {timeout:g} s; try again later (CLAVIS_CALL_TIMEOUT sets the limit)"
        f"{audit_note(record)}"
    )
