"""The team server's API as the MCP tools use it, when ``CLAVIS_API_URL`` is set.

This process then holds no credential of any service: the server injects, redacts and audits.
What it holds is the caller's own key (``CLAVIS_API_KEY``, or the session ``clavis-mcp login``
stored), read again at each request so a new login needs no restart. A stored login with less than
:data:`REFRESH_BEFORE` left is traded for a new one (``POST /v1/auth/refresh``) at the next
request, once per process at a time, and the new token is stored where the old one was. Every failure becomes one
:class:`TeamRequestFailed` (a tool error) that says what happened and what to do; a request never
waits longer than its timeout. The server's text is shown cut short, without control characters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from clavis_mcp.team.admin_client import (
    CA_ENV,
    KEY_ENV,
    URL_ENV,
    check_url,
    clean,
    find_tls_error,
    path_segment,
    response_detail,
    trust,
)
from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import TeamRequestFailed

from .team_session import load_session, save_session
from .times import iso, relative

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0  # list, check, token
CALL_TIMEOUT = 45.0  # call and verify: the server's own egress gives up at 30 s
REFRESH_BEFORE = 3600.0  # a stored login with less than this left is refreshed at the next request
AUDIT_HEADER = "x-clavis-audit-id"
logger = logging.getLogger(__name__)
REDACTIONS_HEADER = "x-clavis-redactions"


@dataclass(frozen=True, slots=True)
class Key:
    """The caller's key and where it came from (for the message when it stops working)."""

    secret: Secret
    source: str  # "env" or "login"
    expires_at: float | None  # a login token's expiry, read from its claims; None for an API key


@dataclass(frozen=True, slots=True)
class Reply:
    data: Any
    headers: httpx.Headers


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (the server verifies it): only to explain a refusal."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def login_command(url: str) -> str:
    return f"clavis-mcp login --url {url}"


class TeamClient:
    """One client per MCP server process; the HTTP connection is made on first use."""

    def __init__(self, url: str, env: Mapping[str, str] | None = None) -> None:
        self.url = check_url(url)
        self._env = os.environ if env is None else env
        self._http: httpx.AsyncClient | None = None
        self._refreshing: asyncio.Lock | None = None
        self._final: float | None = None  # the expiry of a login the server would not extend (its 30-day cap)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TeamClient:
        env = os.environ if env is None else env
        return cls(env.get(URL_ENV, "").strip(), env)

    def __repr__(self) -> str:
        return f"TeamClient(url={self.url!r})"

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def key(self, now: float | None = None) -> Key:
        """The key to send: CLAVIS_API_KEY, else the stored login; an expired login is refused here."""
        now = time.time() if now is None else now
        raw = self._env.get(KEY_ENV, "").strip()
        session = load_session(self.url)
        if raw:
            expires = token_expiry(raw)
            if expires is None or expires > now or session is None or session.expires_at <= now:
                return Key(Secret(raw), "env", expires)
            return Key(session.token, "login", session.expires_at)  # a pasted token expired; a fresh login wins
        if session is None:
            raise TeamRequestFailed(
                f"no key for the team server at {self.url}: run `{login_command(self.url)}` in a terminal, "
                f"or set {KEY_ENV} in this MCP server's environment (a key from `clavis-mcp team key create`)"
            )
        if session.expires_at <= now:
            raise TeamRequestFailed(
                f"your login to the team server at {self.url} expired {relative(session.expires_at, now)} "
                "(a login is refreshed while it is in use, but this one was not used in time); run "
                f"`{login_command(self.url)}` in a terminal; no restart is needed"
            )
        return Key(session.token, "login", session.expires_at)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            verify = trust() if self.url.startswith("https:") else True
            self._http = httpx.AsyncClient(
                base_url=self.url, verify=verify, trust_env=False, follow_redirects=False,
                timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            )  # fmt: skip
        return self._http

    async def fresh_key(self) -> Key:
        """:meth:`key`, after refreshing a stored login that is close to its expiry."""
        key = self.key()
        if not self._due(key):
            return key
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:  # single-flight: concurrent tool calls wait for one refresh
            key = self.key()  # another call may have refreshed it meanwhile
            if self._due(key):
                await self._refresh(key)
                key = self.key()
                if self._due(key):  # not extended (the session's cap, or refused): not asked again for it
                    self._final = key.expires_at
        return key

    def _due(self, key: Key) -> bool:
        if key.source != "login" or key.expires_at is None or key.expires_at == self._final:
            return False
        return key.expires_at - time.time() <= REFRESH_BEFORE

    async def _refresh(self, key: Key) -> None:
        """Trade the stored login for a new one; on failure keep the old one while it lasts."""
        session = load_session(self.url)
        if session is None:
            return
        headers = {"Authorization": f"Bearer {key.secret.reveal()}", "Accept": "application/json"}
        try:
            response = await self._client().post("/v1/auth/refresh", headers=headers)
            data = response.json() if response.status_code == 200 else None
            token, lasts = (data.get("access_token"), data.get("expires_in")) if isinstance(data, dict) else (0, 0)
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("refreshing the login to %s failed: %s", self.url, type(exc).__name__)
            return
        if not isinstance(token, str) or not isinstance(lasts, int) or lasts <= 0:
            logger.warning("the team server at %s refused to refresh the login (%s)", self.url, response.status_code)
            return
        where = save_session(self.url, session.email, Secret(token), token_expiry(token) or time.time() + lasts)
        logger.info("refreshed the login to %s (stored in %s)", self.url, where)

    async def request(self, method: str, path: str, body: object = None, *, timeout: float = READ_TIMEOUT) -> Reply:
        key = await self.fresh_key()
        headers = {"Authorization": f"Bearer {key.secret.reveal()}", "Accept": "application/json"}
        try:
            response = await self._client().request(
                method, path, json=body, headers=headers, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
            )
        except httpx.TimeoutException:
            raise TeamRequestFailed(
                f"the team server at {self.url} did not answer within {timeout:.0f} s; "
                "try again, and if it keeps happening check that the server is running"
            ) from None
        except httpx.TransportError as exc:
            raise TeamRequestFailed(transport_message(self.url, exc)) from None
        if response.status_code >= 400:
            raise TeamRequestFailed(status_message(self.url, response, key), response.status_code)
        try:
            return Reply(response.json() if response.content else {}, response.headers)
        except ValueError:
            raise TeamRequestFailed(
                f"the team server answered {method} {path} with something that is not JSON; "
                f"is {URL_ENV}={self.url} a clavis team server?"
            ) from None

    # The four tools' endpoints.
    async def services(self) -> list[dict[str, Any]]:
        return list((await self.request("GET", "/v1/services")).data.get("services", []))

    async def call(self, service: str, body: dict[str, Any]) -> Reply:
        return await self.request("POST", f"/v1/call/{path_segment(service)}", body, timeout=CALL_TIMEOUT)

    async def check(self, service: str) -> dict[str, Any]:
        return dict((await self.request("GET", f"/v1/credentials/{path_segment(service)}/check")).data)

    async def verify(self, service: str) -> Reply:
        return await self.request("POST", f"/v1/credentials/{path_segment(service)}/verify", timeout=CALL_TIMEOUT)

    async def token(self, service: str) -> Reply:
        return await self.request("GET", f"/v1/tokens/{path_segment(service)}")


def transport_message(url: str, exc: BaseException) -> str:
    tls = find_tls_error(exc)
    if tls is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or type(tls).__name__
        return (
            f"TLS with the team server at {url} failed ({clean(str(reason))}): the server's certificate is not "
            f"trusted by this machine; if it uses a private CA, set {CA_ENV} to that CA's PEM file in this MCP "
            "server's environment and restart it"
        )
    return (
        f"cannot reach the team server at {url} ({clean(str(exc)) or type(exc).__name__}): it may be down or "
        f"the address may be wrong; check {URL_ENV} and try again once the server is up (no restart is needed)"
    )


def status_message(url: str, response: httpx.Response, key: Key, now: float | None = None) -> str:
    """What a refusal means for the person at the MCP client, and the one thing that fixes it."""
    status, detail = response.status_code, response_detail(response)
    said = f" (the server said: {detail})" if detail else ""
    if status == 401:
        return unauthorized_message(url, key, said, now)
    if status == 403:
        return f"the team server refused this{said}; ask a team admin if you need it"
    if status == 429:
        retry = response.headers.get("Retry-After", "").strip()
        wait = f"retry in {retry} s" if retry.isdigit() else "retry later"
        return f"rate-limited (429){said}; {wait}"
    if status == 404:
        return f"not found on the team server{said}; list_services shows what you may use"
    if status in (502, 503, 504):
        return f"the team server could not complete the request ({status}){said}"
    if status >= 500:
        return f"the team server failed ({status}){said}; its log has more"
    return f"the team server refused the request ({status}){said}"


def unauthorized_message(url: str, key: Key, said: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    fix = f"run `{login_command(url)}` in a terminal"
    if key.source == "env":
        fix += f" (it replaces the expired {KEY_ENV} at once, no restart needed)"
    if key.expires_at is not None and key.expires_at <= now:
        where = KEY_ENV if key.source == "env" else "your login"
        return f"the login token in {where} expired {relative(key.expires_at, now)} ({iso(key.expires_at)}); {fix}"
    if key.expires_at is not None or key.source == "login":
        return f"the team server refused your login token{said}; {fix}"
    return (
        f"the team server refused {KEY_ENV}{said}; ask a team admin for a new key "
        "(`clavis-mcp team key create`) and put it in this MCP server's configuration"
    )
