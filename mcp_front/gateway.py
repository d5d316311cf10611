"""The MCP server's side of the proxy: start it on first use, and send calls through it.

The proxy is started lazily so it never delays the MCP ``initialize`` handshake. Calls use
one long-lived httpx client whose proxy is the embedded mitmproxy (with this process's own
proxy credential) and whose only trusted CA is ours: nothing bypasses the proxy.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Sequence

import httpx

from addons.audit_trail import AUDIT_ID_HEADER, REDACTIONS_HEADER
from addons.flowmeta import REFUSED_HEADER, SELECT_HEADER
from certs import LocalCA
from proxy import EmbeddedProxy
from vault import AuditLog, Vault

MCP_CLIENT = "mcp"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Gateway:
    def __init__(self, vault: Vault, audit: AuditLog, ca: LocalCA, extra_addons: Sequence[object] = ()) -> None:
        self.vault = vault
        self.audit = audit
        self.ca = ca
        self._token = secrets.token_urlsafe(32)
        self._proxy = EmbeddedProxy(vault, audit, ca, lambda: {MCP_CLIENT: self._token}, extra_addons=extra_addons)
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> httpx.AsyncClient:
        async with self._lock:
            if self._client is None:
                await self._proxy.start()
                trust = ssl.create_default_context(cafile=str(self.ca.cert_path))
                self._client = httpx.AsyncClient(
                    proxy=httpx.Proxy(self._proxy.url, auth=(MCP_CLIENT, self._token)),
                    verify=trust,
                    follow_redirects=False,
                    timeout=TIMEOUT,
                    trust_env=False,
                )
            return self._client

    async def request(self, service: str, method: str, url: str, **kwargs: object) -> httpx.Response:
        """Send one request for ``service``; the proxy decides, injects, redacts and records."""
        client = await self.client()
        request = client.build_request(method, url, **kwargs)  # type: ignore[arg-type]
        request.headers[SELECT_HEADER] = service
        return await client.send(request)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self._proxy.stop()


def proxy_facts(response: httpx.Response) -> tuple[str | None, int, str | None]:
    """Audit id, redaction count and refusal reason the proxy attached to a response."""
    return (
        response.headers.get(AUDIT_ID_HEADER),
        int(response.headers.get(REDACTIONS_HEADER, "0") or 0),
        response.headers.get(REFUSED_HEADER),
    )
