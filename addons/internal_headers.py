"""Our own response headers come only from us: an upstream's ``X-Clavis-*`` headers are dropped.

The proxy answers its clients in the ``X-Clavis-*`` namespace (the audit id, the redaction
count, why it refused), and call_service trusts those headers more than anything else in a
response. An upstream that sent ``X-Clavis-Refused: <text>`` made call_service report a refusal
that never happened, after the request had gone out, in words the model trusts; so every
header in the namespace, in any spelling a server would read as one, is removed from upstream
responses as soon as they arrive, before any other stage reads them.
"""

from __future__ import annotations

from mitmproxy import http

from clavis_mcp.vault.audit.log import REFUSED
from clavis_mcp.vault.proxy_headers import is_internal

from .flowmeta import DECISION

__all__ = ["StripInternalHeaders", "is_internal", "strip_internal"]


def strip_internal(headers: http.Headers) -> None:
    """Drop every ``X-Clavis-*`` header (any spelling) from ``headers``: none of ours goes past the proxy."""
    fields = headers.fields
    # Every spelling is_internal accepts has "clavis" (ASCII, any case) in its name; a latin-1
    # letter never lower-cases to ASCII, so one byte search clears a header block in the usual case
    # (find, not `in`: a bytes `in` first tries its operand as an integer and catches a TypeError).
    if b"\n".join([name for name, _ in fields]).lower().find(b"clavis") < 0:
        return
    kept = tuple((name, value) for name, value in fields if not is_internal(name.decode("latin-1")))
    if len(kept) != len(fields):
        headers.fields = kept


class StripInternalHeaders:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flow.metadata.get(DECISION) == REFUSED:
            return  # no response yet, or our own refusal (mitmproxy emulates this hook for it)
        strip_internal(response.headers)
