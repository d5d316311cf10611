"""The page's door: loopback peers, our own Host and Origin, the access token, CSRF, strict headers.

A pure ASGI middleware in front of every route (static files and the event stream included):

- the peer must be a loopback address (the server binds 127.0.0.1 only; this is the second lock);
- ``Host`` must name the loopback on the page's port, so a DNS-rebinding site (a name of its own
  that resolves to 127.0.0.1) is refused; an ``Origin``, when sent, must be the page's own, and
  ``Sec-Fetch-Site`` must not say another site made the request;
- the token (``?token=`` once, as printed, then an HttpOnly SameSite=Strict cookie) is required
  on every request and compared in constant time; the first visit is redirected to drop it from
  the address bar;
- a state change (any method but GET/HEAD) also needs the CSRF token in ``X-CSRF-Token`` (a
  cross-site form cannot set a header) and an ``Origin``;
- every answer carries a Content-Security-Policy that allows only this origin's script and style
  and no framing, with ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSRF_HEADER = "x-csrf-token"


def csrf_token(token: str) -> str:
    """Derived from the access token, so it needs no state and changes with each run of the page."""
    return hmac.new(token.encode(), b"clavis-ui csrf", hashlib.sha256).hexdigest()


def cookie_name(port: int) -> str:
    """Cookies ignore ports: one name per port keeps two pages on one machine apart."""
    return f"clavis_ui_{port}"


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf_token(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        port = int(scope["server"][1]) if scope.get("server") else 0
        refusal = self._refusal(scope, headers, port)
        if refusal is not None:
            await _plain(send, *refusal)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        if not same(self._cookie(headers, port), self.token):
            if same(query.get("token"), self.token) and scope["method"] in SAFE_METHODS:
                await self._welcome(send, scope, query, port)
            else:
                await _plain(send, 401, "this page needs its access token: open the URL that `clavis-mcp ui` printed")
            return
        if scope["method"] not in SAFE_METHODS and not (
            "origin" in headers and same(headers.get(CSRF_HEADER), self.csrf)
        ):
            await _plain(send, 403, "refused: a change needs this page's CSRF token and Origin")
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def _refusal(self, scope: Scope, headers: dict[str, str], port: int) -> tuple[int, str] | None:
        client = scope.get("client")
        if not client or not is_loopback(client[0]):
            return 403, "refused: this page answers only on the loopback"
        host = headers.get("host", "")
        name, _, given_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if name.lower() not in LOOPBACK_NAMES or given_port != str(port):
            return 421, "refused: the Host header must name this page on 127.0.0.1 (DNS rebinding?)"
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return 403, "refused: a request from another origin"
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return 403, "refused: a request made by another site"
        return None

    def _cookie(self, headers: dict[str, str], port: int) -> str | None:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is simply no cookie
            return None
        morsel = jar.get(cookie_name(port))
        return morsel.value if morsel is not None else None

    async def _welcome(self, send: Send, scope: Scope, query: dict[str, str], port: int) -> None:
        """The first visit: set the cookie and send the browser to the same page without the token."""
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        location = scope.get("path", "/") + (f"?{rest}" if rest else "")
        cookie = f"{cookie_name(port)}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send({
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                        (b"content-length", b"0"), *SECURITY_HEADERS],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b""})


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    *SECURITY_HEADERS],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
