"""The authorization-code flow of `clavis-mcp oauth login`: PKCE, state, a loopback redirect.

RFC 8252 (OAuth for native apps): the browser is sent to the provider with a PKCE challenge
and a random ``state``; the provider redirects back to ``http://127.0.0.1:PORT/callback``
where a one-shot listener (127.0.0.1 only) takes the code, checks the state in constant time
and closes. The code is exchanged at the token endpoint with the PKCE verifier; the tokens go
straight into the vault and are never printed.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import webbrowser
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from clavis_mcp.vault.errors import LoginFailed
from clavis_mcp.vault.oauth.flow import (
    OAuthConfig,
    Pkce,
    TokenGrant,
    authorization_url,
    token_request,
)
from clavis_mcp.vault.oauth.token_endpoint import obtain_grant
from clavis_mcp.vault.secret import Secret

CALLBACK_PATH = "/callback"
_PAGE = (
    "<!doctype html><meta charset=utf-8><title>clavis-mcp</title>"
    "<p>{message}</p><p>You can close this window and return to the terminal.</p>"
)


async def authorization_code_login(
    service: str,
    config: OAuthConfig,
    client_secret: Secret | None,
    *,
    local: bool,
    port: int = 0,
    open_browser: bool = True,
    say: Callable[[str], None],
    timeout: float = 300.0,
) -> TokenGrant:
    """Run the whole flow; return the provider's grant (tokens as Secrets)."""
    state = secrets.token_urlsafe(32)
    pkce = Pkce.new()
    code_future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    listener = await asyncio.start_server(lambda r, w: _callback(r, w, state, code_future), host="127.0.0.1", port=port)
    try:
        bound = listener.sockets[0].getsockname()[1]
        redirect_uri = f"http://127.0.0.1:{bound}{CALLBACK_PATH}"
        url = authorization_url(config, redirect_uri, state, pkce)
        if open_browser and await asyncio.to_thread(webbrowser.open, url):
            say(f"Opened your browser to log in to {service}. If nothing appeared, open this URL:")
        else:
            say(f"Open this URL in a browser to log in to {service}:")
        say(url)
        say(f"Waiting for the provider to redirect to {redirect_uri} ...")
        try:
            code = await asyncio.wait_for(code_future, timeout)
        except TimeoutError:
            raise LoginFailed(f"no login arrived within {timeout:.0f} s; run the command again") from None
    finally:
        listener.close()
        await listener.wait_closed()
    request = token_request(
        config,
        client_secret,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=pkce.verifier,
    )
    return await obtain_grant(service, request, local=local)


async def _callback(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: str, code: asyncio.Future[str]
) -> None:
    """Answer one browser request. Only a callback with the right state settles the login."""
    try:
        request_line = await asyncio.wait_for(reader.readline(), 10)
        while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
            pass
        status, message = _judge(request_line.decode("latin-1"), state, code)
        body = _PAGE.format(message=message).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (TimeoutError, ConnectionError, ValueError):  # slow, dropped or oversized requests are ignored
        pass
    finally:
        writer.close()


def _judge(request_line: str, state: str, code: asyncio.Future[str]) -> tuple[str, str]:
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] != "GET":
        return "400 Bad Request", "This address only takes the login redirect."
    url = urlsplit(parts[1])
    if url.path != CALLBACK_PATH:
        return "404 Not Found", "This address only takes the login redirect."
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    if not hmac.compare_digest(query.get("state", "").encode(), state.encode()):
        return "400 Bad Request", "The login answer did not match this login attempt (state); it was ignored."
    if code.done():
        return "409 Conflict", "This login is already complete."
    error = query.get("error")
    if error:
        shown = error if error.replace("_", "").isalnum() else "an unreadable error"
        code.set_exception(LoginFailed(f"the provider refused the login: {shown}"))
        return "200 OK", f"The provider refused the login ({shown})."
    if not query.get("code"):
        code.set_exception(LoginFailed("the provider's redirect carried no authorization code"))
        return "400 Bad Request", "The redirect carried no authorization code."
    code.set_result(query["code"])
    return "200 OK", "Logged in. clavis-mcp has stored the tokens in its vault."
