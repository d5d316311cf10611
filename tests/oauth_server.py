"""A real OAuth2 authorization server and API on 127.0.0.1 over HTTPS, for the tests.

Small on purpose, strict where clients go wrong: PKCE (S256) is required for the
authorization code, ``state`` is passed back untouched, refresh tokens rotate (the old one
dies at once, as providers with rotation do), and every token-endpoint hit is counted, so a
test can prove "exactly one refresh". ``/api/me`` is the provider's API: it answers 200 for a
live access token and 401 otherwise, with GitHub-style rate-limit headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

from clavis_mcp.vault import Secret, Vault
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from demo.echo_upstream import LoopbackHandler, serve_https

CLIENT_ID = "clavis-test-client"
CLIENT_SECRET = "cs-test-0b1c2d3e4f5a6b7c8d9e0f1a2b3c"
PUBLIC_CLIENT_ID = "clavis-test-public-client"  # a native app without a secret: PKCE only (RFC 8252 8.4)


@dataclass
class AuthServerState:
    """What the server knows and what tests may change between requests."""

    expires_in: int = 3600
    rotate: bool = True
    down: bool = False  # the token endpoint answers 503
    delay: float = 0.0  # seconds the token endpoint takes: widens the window a race needs
    delays: list[float] = field(default_factory=list)  # per-request delays, used (in order) before `delay`
    hits: Counter[str] = field(default_factory=Counter)  # token-endpoint requests by grant type
    access: dict[str, float] = field(default_factory=dict)  # live access token -> expiry
    refresh: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # code -> (challenge, redirect, scope)
    token_bodies: list[str] = field(default_factory=list)  # every token response sent, to prove none leaks
    api_calls: list[str] = field(default_factory=list)  # the Authorization header of each /api/me request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access.clear()

    def issue_refresh_token(self) -> str:
        with self.lock:
            token = "rt-" + secrets.token_urlsafe(24)
            self.refresh.add(token)
            return token


@dataclass
class OAuthServer:
    """``with OAuthServer.start(ca) as server: ...``; ``server.state`` holds tokens and counters."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    state: AuthServerState

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return self.base + "/token"

    @property
    def authorize_url(self) -> str:
        return self.base + "/authorize"

    @classmethod
    def start(cls, ca: trustme.CA, hostnames: tuple[str, ...] = ()) -> OAuthServer:
        state = AuthServerState()
        server, thread = serve_https(ca, _handler(state), ("127.0.0.1", "localhost", *hostnames))
        return cls(server, thread, state)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> OAuthServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(state: AuthServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/authorize":
                self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
            elif url.path == "/api/me":
                self._api()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/token":
                self._json(404, {"error": "not_found"})
                return
            with state.lock:
                state.hits[form.get("grant_type", "")] += 1
            with state.lock:
                delay = state.delays.pop(0) if state.delays else state.delay
            time.sleep(delay)
            if state.down:
                self._json(503, {"error": "temporarily_unavailable"})
                return
            self._token(form)

        def _authorize(self, query: dict[str, str]) -> None:
            if query.get("client_id") not in (CLIENT_ID, PUBLIC_CLIENT_ID) or query.get("response_type") != "code":
                self._json(400, {"error": "unauthorized_client"})
                return
            redirect = query.get("redirect_uri", "")
            if not redirect.startswith("http://127.0.0.1:") or query.get("code_challenge_method") != "S256":
                self._json(400, {"error": "invalid_request"})
                return
            code = "code-" + secrets.token_urlsafe(16)
            with state.lock:
                state.codes[code] = (query.get("code_challenge", ""), redirect, query.get("scope", ""))
            target = redirect + "?" + urlencode({"code": code, "state": query.get("state", "")})
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _client_ok(self, form: dict[str, str]) -> bool:
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
                return (user, password) == (CLIENT_ID, CLIENT_SECRET)
            if form.get("client_id") == PUBLIC_CLIENT_ID:
                return "client_secret" not in form and form.get("grant_type") != "client_credentials"
            return (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET)

        def _token(self, form: dict[str, str]) -> None:
            if not self._client_ok(form):
                self._json(401, {"error": "invalid_client"})
                return
            grant = form.get("grant_type")
            refresh: str | None = None
            with state.lock:
                if grant == "authorization_code":
                    challenge, redirect, scope = state.codes.pop(form.get("code", ""), ("", "", ""))
                    verifier = form.get("code_verifier", "")
                    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                    if not challenge or digest.decode() != challenge or redirect != form.get("redirect_uri"):
                        self._json(400, {"error": "invalid_grant", "error_description": "bad code or verifier"})
                        return
                    refresh = "rt-" + secrets.token_urlsafe(24)
                    state.refresh.add(refresh)
                elif grant == "refresh_token":
                    old = form.get("refresh_token", "")
                    if old not in state.refresh:
                        self._json(400, {"error": "invalid_grant", "error_description": "refresh token revoked"})
                        return
                    refresh = old
                    if state.rotate:
                        state.refresh.discard(old)
                        refresh = "rt-" + secrets.token_urlsafe(24)
                        state.refresh.add(refresh)
                elif grant != "client_credentials":
                    self._json(400, {"error": "unsupported_grant_type"})
                    return
                access = "at-" + secrets.token_urlsafe(24)
                state.access[access] = time.time() + state.expires_in
            body: dict[str, object] = {"access_token": access, "token_type": "Bearer", "expires_in": state.expires_in}
            if refresh is not None:
                body["refresh_token"] = refresh
            self._json(200, body)
            state.token_bodies.append(json.dumps(body))

        def _api(self) -> None:
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            with state.lock:
                state.api_calls.append(token)
                live = state.access.get(token, 0.0) > time.time()
            headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999", "x-ratelimit-reset": "1900000000"}
            self._json(200 if live else 401, {"ok": live}, headers)

        def _json(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def register_expired(vault: Vault, server: OAuthServer, name: str = "acme") -> Secret:
    """An OAuth service on ``server`` whose access token has expired and whose refresh token works."""
    from tests.conftest import make_service

    service = make_service(name, f"127.0.0.1:{server.port}", local=True)
    config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", (), server.authorize_url)
    first = Secret("at-expired-0123456789abcdef")
    grant = TokenGrant(first, 0.0, Secret(server.state.issue_refresh_token()), None)
    oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
    return first
