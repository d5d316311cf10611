"""The MCP server over streamable HTTP, for clients that prefer HTTP to stdio.

Loopback only, and two locks on the door: a bearer token (generated per run, compared in
constant time) and the SDK's DNS-rebinding guard (the Host must be a loopback name and a
browser's Origin, if any, a loopback origin), so a web page the user visits can neither
reach nor drive the endpoint.
"""

from __future__ import annotations

import hmac
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = "127.0.0.1"
PATH = "/mcp"
LOCAL_SECURITY = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


class BearerToken:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
                response = PlainTextResponse(
                    "clavis-mcp: missing or wrong bearer token; use the token `clavis-mcp serve --http` printed\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="clavis-mcp"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer[Any], token: str) -> ASGIApp:
    return BearerToken(
        server.streamable_http_app(streamable_http_path=PATH, transport_security=LOCAL_SECURITY, host=LOOPBACK), token
    )


def bind_loopback(port: int) -> socket.socket:
    """Bind and listen before serving: port 0 gives a known port to print, a busy port fails clearly,
    and the printed endpoint accepts connections from the moment it is printed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen(128)  # clients that connect before the server loop runs wait in the backlog
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {LOOPBACK}:{port} ({exc.strerror}); choose another --port") from None
    return sock


async def serve_http(server: MCPServer[Any], token: str, sock: socket.socket) -> None:
    config = uvicorn.Config(http_app(server, token), log_level="warning", access_log=False, lifespan="on")
    await uvicorn.Server(config).serve(sockets=[sock])
