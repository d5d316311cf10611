"""Rate-limit recording: keep the provider's rate-limit headers per service, with when they came.

Runs after redaction, so a hostile upstream cannot plant a reflected secret in the vault
through a header that looks like a rate limit. Nothing is written when a response carries no
such header, so ordinary traffic does not touch the vault.
"""

from __future__ import annotations

import time

from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.limits.ratelimits import rate_limit_headers, record

from .flowmeta import DECISION, SERVICE


class RecordRateLimits:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def response(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if name is None or flow.response is None or flow.metadata.get(DECISION) != "injected":
            return
        names = b"\n".join([name for name, _ in flow.response.headers.fields]).lower()
        if b"rate" not in names and b"retry" not in names:
            return  # every name rate_limit_headers keeps holds one of them: most responses end here
        found = rate_limit_headers(list(flow.response.headers.items(multi=True)))
        if found:
            record(self._vault, name, found, time.time())
