"""Rate-limit recording: keep the provider's rate-limit headers per service, with when they came.

Runs after redaction, so a hostile upstream cannot plant a reflected secret in the vault
through a header that looks like a rate limit. Nothing is written when a response carries no
such header, so ordinary traffic does not touch the vault.

Providers such as OpenAI, GitHub and Anthropic send them on every response, and each record is a
vault write transaction (~50 us of CPU, and every reader's next freshness check then reads the
counter again). So a service's figures are written at most once every ``EVERY`` seconds by this
proxy: the first response after a quiet spell at once, later ones as the latest pending, written
when the interval is up (or when the proxy stops). A refusal that says when to come back (429,
503, ``Retry-After``) is written at once: it is what ``check_credential_status`` must not miss.
"""

from __future__ import annotations

import asyncio
import time

from mitmproxy import http

from clavis_mcp.vault import Vault
from clavis_mcp.vault.limits.ratelimits import rate_limit_headers, record

from .flowmeta import DECISION, SERVICE

EVERY = 1.0  # seconds between two writes of one service's figures by this proxy
URGENT_STATUS = frozenset({429, 503})


class RecordRateLimits:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._written: dict[str, float] = {}  # service -> monotonic time of its last write
        self._pending: dict[str, tuple[dict[str, str], float]] = {}  # service -> (headers, observed at)
        self._flush: asyncio.TimerHandle | None = None

    def response(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if name is None or flow.response is None or flow.metadata.get(DECISION) != "injected":
            return
        names = b"\n".join([name for name, _ in flow.response.headers.fields]).lower()
        if names.find(b"rate") < 0 and names.find(b"retry") < 0:  # find: a bytes `in` tries an integer first
            return  # every name rate_limit_headers keeps holds one of them: most responses end here
        found = rate_limit_headers(list(flow.response.headers.items(multi=True)))
        if not found:
            return
        urgent = flow.response.status_code in URGENT_STATUS or "retry-after" in found
        last = self._written.get(name)
        if urgent or last is None or time.monotonic() - last >= EVERY or not self._later(last):
            self._write(name, found, time.time())
        else:
            self._pending[name] = (found, time.time())

    def done(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self._write_pending()

    def _later(self, last: float) -> bool:
        """Arrange for the pending figures to be written when the interval is up; False without a loop."""
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._flush = loop.call_later(max(0.0, last + EVERY - time.monotonic()), self._write_pending)
        return True

    def _write_pending(self) -> None:
        self._flush = None
        pending, self._pending = self._pending, {}
        for name, (headers, observed_at) in pending.items():
            self._write(name, headers, observed_at)

    def _write(self, name: str, headers: dict[str, str], observed_at: float) -> None:
        self._pending.pop(name, None)  # superseded by what is written now
        record(self._vault, name, headers, observed_at)
        self._written[name] = time.monotonic()
