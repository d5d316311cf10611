"""The replica's way out: API calls sent through this process's embedded proxy, the local pipeline.

One embedded mitmproxy per process runs the same ordered addons as the local MCP server and
standalone proxy (destination binding, dial guard, policy, budget, injection at egress,
redaction of the answer in every encoding, rate-limit recording, audit), on the replica's
mirror of the team's services and with the team audit log. Each caller (an API key or a
person) gets its own proxy credential, so the proxy's audit record names it as the source.
The answer is read up to a bound and scrubbed once more in the form the caller will read.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import httpx

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog
from clavis_mcp.vault.errors import ApiRefused
from clavis_mcp.vault.limits.ratelimits import latest
from clavis_mcp.vault.proxy_config import ProxyConfig
from clavis_mcp.vault.proxy_headers import (
    AUDIT_ID_HEADER,
    INTERNAL_PREFIX,
    REDACTIONS_HEADER,
    REFUSED_HEADER,
    SELECT_HEADER,
)
from clavis_mcp.vault.redaction.service import ServiceRedactors
from clavis_mcp.vault.redaction.views import redact_decoded

from .audit import TeamAuditLog
from .mirror import Mirror
from .storage import TeamStore

if TYPE_CHECKING:
    from clavis_mcp.vault.redaction.redactor import Redactor

MAX_BODY = 8 * 1024 * 1024
TIMEOUT = 30.0
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "te", "trailer", "upgrade"}
)


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back, scrubbed: status, headers, body bytes, and the proxy's own facts."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    content_type: str
    refused: str | None
    audit_id: str | None
    redactions: int
    retry_after: str | None
    redactor: Redactor | None

    def scrub(self, text: str) -> str:
        return self.redactor.redact_text(text)[0] if self.redactor is not None else text


class Egress:
    def __init__(
        self, mirror: Mirror, audit: TeamAuditLog, store: TeamStore, config: ProxyConfig | None = None
    ) -> None:
        self._mirror, self._audit, self._store = mirror, audit, store
        self._config = config or ProxyConfig()
        self._tokens: dict[str, str] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._proxy: EmbeddedProxy | None = None
        self._ca = LocalCA(mirror.home / "ca")
        self._redactors: ServiceRedactors | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        config = replace(self._config, tokens=lambda: self._tokens)
        # The team log offers what the AuditTrail addon calls (append, check_writable).
        self._proxy = EmbeddedProxy(self._mirror.vault, cast(AuditLog, self._audit), self._ca, config)
        await self._proxy.start()
        self._trust = ssl.create_default_context(cafile=str(self._ca.cert_path))

    async def stop(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._proxy is not None:
            await self._proxy.stop()
            self._proxy = None

    def client_for(self, source: str) -> httpx.AsyncClient:
        """The client through the embedded proxy for ``source`` (the streaming egress sends with it)."""
        return self._client(source)

    def _client(self, source: str) -> httpx.AsyncClient:
        client = self._clients.get(source)
        if client is None:
            assert self._proxy is not None
            token = self._tokens[source] = secrets.token_urlsafe(32)
            client = self._clients[source] = httpx.AsyncClient(
                proxy=httpx.Proxy(self._proxy.url, auth=(source, token)),
                verify=self._trust,
                follow_redirects=False,
                timeout=httpx.Timeout(TIMEOUT, connect=10.0),
                trust_env=False,
            )
        return client

    async def send(self, source: str, service: str, method: str, url: str, **kwargs: Any) -> Answer:
        """Send one request for ``service`` on behalf of ``source`` (the audit's name for the caller)."""
        client = self._client(source)
        request = client.build_request(method, url, **kwargs)
        request.headers[SELECT_HEADER] = service
        started = time.time()
        try:
            async with asyncio.timeout(TIMEOUT):
                response = await client.send(request, stream=True)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BODY:
                            raise ApiRefused(502, f"the provider's answer is larger than {MAX_BODY} bytes")
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ApiRefused(504, "the provider did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiRefused(502, f"the provider could not be reached ({type(exc).__name__})") from None
        redactor = self._redactor(service)
        content_type = response.headers.get("content-type", "")
        data = bytes(body)
        if redactor is not None:
            data, _ = redact_decoded(redactor, data, response.charset_encoding)
        self._share_rate_limits(service, started)
        headers = [
            (k, self._scrub(redactor, v))
            for k, v in response.headers.multi_items()
            if k.lower() not in HOP_BY_HOP and not k.lower().startswith(INTERNAL_PREFIX.lower())
        ]
        return Answer(
            status=response.status_code,
            headers=headers,
            body=data,
            content_type=content_type,
            refused=response.headers.get(REFUSED_HEADER),
            audit_id=response.headers.get(AUDIT_ID_HEADER),
            redactions=int(response.headers.get(REDACTIONS_HEADER, "0") or 0),
            retry_after=response.headers.get("retry-after"),
            redactor=redactor,
        )

    @staticmethod
    def _scrub(redactor: Redactor | None, value: str) -> str:
        return redactor.redact_text(value)[0] if redactor is not None else value

    def _redactor(self, service: str) -> Redactor | None:
        if self._redactors is None:
            self._redactors = ServiceRedactors(self._mirror.vault)
        snapshot = self._mirror.vault.snapshot()
        if service not in snapshot.secrets:
            return None
        return self._redactors.for_service(snapshot, service).values

    def _share_rate_limits(self, service: str, since: float) -> None:
        """What the proxy recorded of the provider's limits goes to PostgreSQL, for every replica."""
        seen = latest(self._mirror.vault, service)
        if seen is not None and seen[1] >= since:
            self._store.record_rate_limits(service, seen[0], seen[1])
