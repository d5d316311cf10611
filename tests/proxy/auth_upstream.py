"""A loopback HTTPS upstream that answers through a test's own function, and a proxy routed to it.

The auth-method tests need an upstream that checks the credential the way the provider would
(an AWS signature recomputed with botocore, an HMAC, a key in a JSON body) and answers as the
provider does, so that a real client (boto3) reads the answer. Real-looking names reach it
through :class:`~tests.proxy.routing.LoopbackRoutes`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import LoopbackHandler, Received, running_tls
from tests.conftest import PROXY_TOKEN, PROXY_USER, running_proxy
from tests.proxy.routing import LoopbackRoutes

type Answer = tuple[int, list[tuple[str, str]], bytes]
type Responder = Callable[[Received], Answer]


def read_body(handler: LoopbackHandler) -> bytes:
    """The body as sent: Content-Length bytes, or a chunked body with its framing removed."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


@dataclass
class AuthUpstream:
    port: int
    received: list[Received] = field(default_factory=list)


@contextmanager
def auth_upstream(ca: trustme.CA, names: tuple[str, ...], respond: Responder) -> Iterator[AuthUpstream]:
    upstream = AuthUpstream(0)

    class Handler(LoopbackHandler):
        def _handle(self) -> None:
            record = Received(self.command, self.path, list(self.headers.items()), read_body(self))
            upstream.received.append(record)
            status, headers, body = respond(record)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    with running_tls(ca.issue_cert(*names), Handler) as port:
        upstream.port = port
        yield upstream


@asynccontextmanager
async def routed_proxy(
    vault: Vault, audit: AuditLog, home: Path, names: tuple[str, ...], port: int
) -> AsyncIterator[EmbeddedProxy]:
    """The real embedded proxy over ``vault``, every name in ``names`` reaching loopback ``port``."""
    routes = LoopbackRoutes({name: port for name in names})
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, extra_addons=(routes,), resolver=routes.resolve)
    async with running_proxy(vault, audit, home, config) as proxy:
        yield proxy


def proxy_url_with_credentials(proxy: EmbeddedProxy) -> str:
    """The proxy URL as an HTTPS_PROXY agent is given it (`clavis-mcp env`), credentials inside."""
    assert proxy.port is not None
    return f"http://{PROXY_USER}:{PROXY_TOKEN}@127.0.0.1:{proxy.port}"


def headers_of(received: Received) -> dict[str, str]:
    return {name.lower(): value for name, value in received.headers}
