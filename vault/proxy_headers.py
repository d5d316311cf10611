"""Header names the proxy and its clients agree on.

They live in the lowest layer so that both sides share one spelling without the MCP front
end importing an addon (docs/architecture.md): the proxy reads the selection header and answers with
the audit id, the redaction count and, when it refuses, the reason.
"""

from __future__ import annotations

import functools
import re

SELECT_HEADER = "X-Clavis-Service"  # request: which service a call_service request is for (stripped)
CALL_HEADER = "X-Clavis-Call"  # request: a call_service request's id, to report its audit record back (stripped)
AUDIT_ID_HEADER = "X-Clavis-Audit-Id"  # response: the audit record of this request
REDACTIONS_HEADER = "X-Clavis-Redactions"  # response: how many secrets were scrubbed
REFUSED_HEADER = "X-Clavis-Refused"  # response: why the proxy answered itself
INTERNAL_PREFIX = "x-clavis-"  # every header with this prefix is stripped before egress


@functools.lru_cache(maxsize=1024)
def header_key(name: str) -> str:
    """A header name as servers and frameworks that read ``_`` and ``.`` as ``-`` may see it:
    ``X_Api.Key``, ``x-api-key`` and ``Authorization_`` compare as one (runs of separators are one,
    and those at either end are dropped, as ``proxy/http1_framing.name_key`` compares names)."""
    return re.sub(r"[-_.]+", "-", name.lower()).strip("-")


def is_internal(name: str) -> bool:
    """Whether a header is in our ``X-Clavis-*`` namespace, in any case and any ``-``/``_``/``.``
    spelling (servers and frameworks read ``X_Clavis.Call`` as ``X-Clavis-Call``): the one test
    every path uses to strip them, requests before egress and upstream responses alike."""
    return header_key(name).startswith(INTERNAL_PREFIX)
