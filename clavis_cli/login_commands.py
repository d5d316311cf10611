"""`clavis-mcp login` and `logout`: log in to a team server once, so no key sits in an MCP client's config file.

The login (a 24-hour token) goes to the OS keychain, or a 0600 file in the clavis-mcp home where
no keychain is reachable; the MCP server reads it at each request, so logging in again needs no
restart. The password is never stored: the client renews a stored login before it expires
(`POST /v1/auth/refresh`, up to 30 days from this login); past that every tool says so and names
this command.
"""

from __future__ import annotations

import os
import sys
import time

import click
import httpx

from clavis_mcp.mcp_front.team_client import CONNECT_TIMEOUT, READ_TIMEOUT, Key, status_message, transport_message
from clavis_mcp.mcp_front.team_session import Session, forget_session, load_session, save_session
from clavis_mcp.mcp_front.times import iso
from clavis_mcp.team.admin_client import URL_ENV, check_url, clean, trust
from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import TeamRequestFailed

ENDED_ON_SERVER = "this login has ended on the server"  # how team/identity.py's ENDED begins


def log_in(url: str, email: str, password: Secret) -> tuple[Secret, float]:
    """The server's token for this address and password, and when it expires."""
    verify = trust() if url.startswith("https:") else True
    try:
        with httpx.Client(
            verify=verify, trust_env=False, timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        ) as http:
            response = http.post(f"{url}/v1/auth/login", json={"email": email, "password": password.reveal()})
    except httpx.TimeoutException:
        raise TeamRequestFailed(f"the team server at {url} did not answer in time; try again") from None
    except httpx.TransportError as exc:
        raise TeamRequestFailed(transport_message(url, exc)) from None
    if response.status_code == 401:
        raise TeamRequestFailed(f"the team server at {url} refused the login: wrong e-mail address or password", 401)
    if response.status_code >= 400:
        nobody = Key(Secret(""), "login", None)  # the 401 case, the only one that reads it, is handled above
        raise TeamRequestFailed(f"login failed: {status_message(url, response, nobody)}", response.status_code)
    try:
        answer = response.json()
        token, lifetime = str(answer["access_token"]), float(answer.get("expires_in") or 0)
    except (ValueError, KeyError, TypeError):
        raise TeamRequestFailed(f"the server at {url} did not answer as a clavis team server does") from None
    return Secret(token), time.time() + lifetime


@click.command()
@click.option("--url", help=f"The team server's address (default: ${URL_ENV}).")
@click.option("--email", help="Your e-mail address on the team server (asked if not given).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of asking.")
def login(url: str | None, email: str | None, password_stdin: bool) -> None:
    """Log in to a team server; the MCP server then uses the login, and no key goes in a config file."""
    url = check_url((url or os.environ.get(URL_ENV, "")).strip() or _missing_url())
    email = (email or click.prompt("E-mail")).strip()
    raw = sys.stdin.readline().rstrip("\r\n") if password_stdin else click.prompt("Password", hide_input=True)
    if not raw:
        raise TeamRequestFailed("the password is empty; give it on the prompt or on standard input")
    token, expires_at = log_in(url, email, Secret(raw))
    where = save_session(url, email, token, expires_at)
    click.echo(f"logged in to {url} as {clean(email)} until {iso(expires_at)}; the login is kept in {where}")
    click.echo(f"for Claude Desktop (no key in its config): clavis-mcp install claude-desktop --team {url}")


@click.command()
@click.option("--url", help=f"The team server's address (default: ${URL_ENV}).")
def logout(url: str | None) -> None:
    """End your login on a team server (every one of yours: the server ends them together) and forget it here."""
    url = check_url((url or os.environ.get(URL_ENV, "")).strip() or _missing_url())
    session = load_session(url)
    if session is None:
        raise TeamRequestFailed(f"no login to {url} is kept here; nothing to end (log in with `clavis-mcp login`)")
    ended, told = _end_on_server(url, session)
    forget_session(url)
    click.echo(f"logged out of {url} ({clean(session.email)}): {told}; the login is no longer kept here")
    if not ended:
        click.echo(
            "to end the logins elsewhere (a copy of the token, another machine): log in again and log out, "
            "or ask a team admin to run `clavis-mcp team user sign-out EMAIL`",
            err=True,
        )
        sys.exit(1)


def _end_on_server(url: str, session: Session) -> tuple[bool, str]:
    """Ask the server to end every login of this person: whether it is sure they have ended, and what
    to say. The local copy goes either way."""
    if session.expires_at <= time.time():
        return False, "the login kept here had expired, so the server could not be asked to end the others"
    verify = trust() if url.startswith("https:") else True
    try:
        with httpx.Client(
            verify=verify, trust_env=False, timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        ) as http:
            bearer = {"Authorization": f"Bearer {session.token.reveal()}"}
            response = http.post(f"{url}/v1/auth/logout", headers=bearer)
    except httpx.HTTPError:
        return False, "the server could not be reached, so logins elsewhere may still work until they expire"
    if response.status_code == 401 and ENDED_ON_SERVER in response.text:  # signed out, removed, new role or password
        return True, "the server had already ended it"
    if response.status_code >= 400:
        return False, f"the server did not end it ({response.status_code}), so logins elsewhere may still work"
    return True, "every login of yours on that server has ended"


def _missing_url() -> str:
    raise TeamRequestFailed(f"give the team server's address: clavis-mcp login --url https://... (or set {URL_ENV})")


COMMANDS = [login, logout]
