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

from .flowmeta import DECISION, INTERNAL_PREFIX
from .inject import header_key


def is_internal(name: str) -> bool:
    return header_key(name).startswith(INTERNAL_PREFIX)


class StripInternalHeaders:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or flow.metadata.get(DECISION) == REFUSED:
            return  # no response yet, or our own refusal (mitmproxy emulates this hook for it)
        fields = response.headers.fields
        kept = tuple((name, value) for name, value in fields if not is_internal(name.decode("latin-1")))
        if len(kept) != len(fields):
            response.headers.fields = kept
