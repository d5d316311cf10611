"""The page's door: loopback peers, our own Host and Origin, the session token, CSRF, strict headers.

A pure ASGI middleware in front of every route (static files and the event stream included):

- the peer must be a loopback address (the server binds 127.0.0.1 only; this is the second lock);
- ``Host`` must name the loopback on the page's port, so a DNS-rebinding site (a name of its own
  that resolves to 127.0.0.1) is refused; an ``Origin``, when sent, must be the page's own, and
  ``Sec-Fetch-Site`` must not say another site made the request;
- the session token travels only in the ``X-Clavis-Session`` header, compared in constant time.
  It is never a cookie: cookies ignore ports, so any listener on another 127.0.0.1 port could
  have a same-site bounce hand it over. The browser learns it from the URL's fragment (never sent
  in a request) and keeps it in sessionStorage, which is per origin, port included;
- a navigation to one of the page's own paths without the header gets only the shell (no data),
  whose script then fetches the page with the header; anything else without it is refused, so no
  other answer (a JSON one holding agent text) is ever fetched into the shell's place;
- a request another site made (``Sec-Fetch-Site``) is refused, but for such a navigation: the
  launch file (a ``file://`` page) sends the browser here as another site would. It gets the shell
  marked ``data-elsewhere``, whose script uses only a token in the URL's fragment, never one the
  tab kept, so another site can bring the person here but cannot open the page with their session;
- a state change (any method but GET/HEAD) also needs the CSRF token in ``X-CSRF-Token`` and an
  ``Origin``;
- every answer carries a Content-Security-Policy that allows only this origin's script and style
  and no framing, with ``no-store`` and ``no-referrer``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
SESSION_HEADER = "x-clavis-session"
STATIC_PREFIX = "/static/"
NEEDS_TOKEN = "this page needs its access token: open the URL that `clavis-mcp ui` printed"
# What a navigation without the header gets: no data, only the script that fetches the page with it.
SHELL = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>clavis-mcp</title>'
    '<link rel="stylesheet" href="/static/ui.css"><script src="/static/ui.js" defer></script></head>'
    '<body data-shell><main><p id="opening" class="hint">opening the page…</p>'
    "<noscript><p>This page needs JavaScript: its access token travels in a header, never a cookie.</p></noscript>"
    "</main></body></html>"
)
# What a navigation another site made gets: the same shell, told to take a token only from the fragment.
ELSEWHERE_SHELL = SHELL.replace("<body data-shell>", "<body data-shell data-elsewhere>")
OTHER_SITES = ("cross-site", "same-site")


def csrf_token(token: str) -> str:
    """Derived from the access token, so it needs no state and changes with each run of the page."""
    return hmac.new(token.encode(), b"clavis-ui csrf", hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, app: ASGIApp, token: str, pages: frozenset[str]) -> None:
        self.app = app
        self.token = token
        self.csrf = csrf_token(token)
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return  # no websockets
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        port = int(scope["server"][1]) if scope.get("server") else 0
        refusal = self._refusal(scope, headers, port)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        method, path = scope["method"], scope.get("path", "")
        public = method in SAFE_METHODS and path.startswith(STATIC_PREFIX)  # our script and style: no data
        if not public and not same(headers.get(SESSION_HEADER), self.token):
            if self._navigation(method, path, headers):
                elsewhere = headers.get("sec-fetch-site") in OTHER_SITES
                await _answer(send, 200, ELSEWHERE_SHELL if elsewhere else SHELL, "text/html")
            else:
                await _answer(send, 401, NEEDS_TOKEN)
            return
        if method not in SAFE_METHODS and not ("origin" in headers and same(headers.get(CSRF_HEADER), self.csrf)):
            await _answer(send, 403, "refused: a change needs this page's CSRF token and Origin")
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
        if headers.get("sec-fetch-site") in OTHER_SITES and not (
            headers.get("sec-fetch-mode") == "navigate"
            and SESSION_HEADER not in headers
            and self._navigation(scope["method"], scope.get("path", ""), headers)
        ):
            return 403, "refused: a request made by another site"
        return None

    def _navigation(self, method: str, path: str, headers: dict[str, str]) -> bool:
        """A browser opening one of the page's own paths: what may get the data-free shell."""
        return method in SAFE_METHODS and path in self.pages and "text/html" in headers.get("accept", "")


async def _answer(send: Send, status: int, text: str, kind: str = "text/plain") -> None:
    body = (text + "\n").encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", f"{kind}; charset=utf-8".encode()), (b"content-length", str(len(body)).encode()),
                    *SECURITY_HEADERS],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
