"""OAuth verbs: `oauth add` registers an OAuth2 service and logs in, `oauth login` logs in again
(the fix for ``reauth_required``), `oauth status` shows where each OAuth service stands.

Tokens go from the provider straight into the vault; no command prints one. The client secret
comes from a hidden prompt, stdin or an environment variable, never from argv.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from clavis_mcp.vault import AuthSpec, Secret, Service, parse_hosts, validate_name, validate_secret
from clavis_mcp.vault.errors import InvalidOAuthConfig, ServiceError
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import GRANTS, OAuthConfig, TokenGrant, token_request, validate_config
from clavis_mcp.vault.oauth.token_endpoint import obtain_grant

from .oauth_login import authorization_code_login
from .runtime import open_runtime

BEARER = AuthSpec(kind="header", name="Authorization", template="Bearer {secret}")


@click.group()
def oauth() -> None:
    """OAuth2 services: tokens refreshed automatically, never shown."""


def _secret_options[F: Callable[..., Any]](fn: F) -> F:
    for option in (
        click.option("--client-secret-stdin", is_flag=True, help="Read the client secret from standard input."),
        click.option("--client-secret-env", metavar="VAR", help="Read the client secret from variable VAR."),
    ):
        fn = option(fn)
    return fn


def _login_options[F: Callable[..., Any]](fn: F) -> F:
    for option in (
        click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser."),
        click.option("--port", type=click.IntRange(0, 65535), default=0, help="Loopback port for the redirect."),
        click.option("--timeout", type=click.FloatRange(1), default=300.0, help="Seconds to wait for the login."),
    ):
        fn = option(fn)
    return fn


@oauth.command("add")
@click.argument("name")
@click.option("--host", "hosts", multiple=True, required=True, help="API host the access token is sent to.")
@click.option("--token-url", required=True, help="The provider's token endpoint (https).")
@click.option("--authorize-url", help="The provider's authorization endpoint, for the refresh_token grant.")
@click.option("--client-id", required=True, help="The OAuth client (app) id.")
@click.option("--grant", type=click.Choice(GRANTS), default="refresh_token", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for; repeatable.")
@click.option("--client-auth", type=click.Choice(["post", "basic"]), default="post", show_default=True,
              help="Send the client secret in the form (post) or as HTTP Basic auth.")  # fmt: skip
@click.option("--auth-param", "auth_params", multiple=True, metavar="KEY=VALUE",
              help="Extra authorization parameter, e.g. access_type=offline for Google; repeatable.")  # fmt: skip
@click.option("--public-client", is_flag=True, help="The client has no secret (PKCE only).")
@click.option("--connector", default="generic", show_default=True, help="Connector type (informational).")
@click.option("--local", is_flag=True, help="Allow loopback/private addresses for this service and its endpoints.")
@click.option("--reveal", type=click.Choice(["never", "masked", "full"]), default="masked", show_default=True)
@_secret_options
@_login_options
def add(
    name: str,
    hosts: tuple[str, ...],
    token_url: str,
    authorize_url: str | None,
    client_id: str,
    grant: str,
    scopes: tuple[str, ...],
    client_auth: str,
    auth_params: tuple[str, ...],
    public_client: bool,
    connector: str,
    local: bool,
    reveal: str,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    no_browser: bool,
    port: int,
    timeout: float,
) -> None:
    """Register OAuth2 service NAME and log in (browser for refresh_token, none for client_credentials)."""
    service = Service(
        name=validate_name(name),
        auth=BEARER,
        hosts=parse_hosts(list(hosts)),
        connector=connector,
        local=local,
        reveal=reveal,  # type: ignore[arg-type]
        created_at=time.time(),
    )
    config = validate_config(
        OAuthConfig(
            token_url=token_url,
            client_id=client_id,
            grant=grant,  # type: ignore[arg-type]
            scopes=scopes,
            authorize_url=authorize_url,
            client_auth=client_auth,  # type: ignore[arg-type]
            authorize_params=tuple(_pair(p) for p in auth_params),
        ),
        service,
    )
    with open_runtime() as runtime:
        if name in {s.name for s in runtime.vault.list_services()}:
            raise ServiceError(f"a service named {name!r} already exists; remove it first or pick another name")
        secret = None if public_client else _read_client_secret(client_secret_stdin, client_secret_env)
        obtained = _obtain(name, config, secret, local=local, open_browser=not no_browser, port=port, timeout=timeout)
        oauth_store.register(runtime.vault, service, config, secret, obtained)
        runtime.audit.append(source="cli", service=name, action="add", decision="added")
    click.echo(f"added {name} (oauth2, {grant} grant) for {', '.join(str(h) for h in service.hosts)}")
    click.echo(_summary(obtained))


@oauth.command("login")
@click.argument("name")
@click.option("--new-client-secret", is_flag=True, help="Also replace the stored client secret.")
@_secret_options
@_login_options
def login(
    name: str,
    new_client_secret: bool,
    client_secret_stdin: bool,
    client_secret_env: str | None,
    no_browser: bool,
    port: int,
    timeout: float,
) -> None:
    """Log in to OAuth service NAME again: new tokens replace the old (the fix for reauth_required)."""
    with open_runtime() as runtime:
        record = oauth_store.load(runtime.vault, name)
        if record is None:
            runtime.vault.get_service(name)  # an unknown name says which names exist
            raise InvalidOAuthConfig(f"{name!r} is not an OAuth service; add one with: clavis-mcp oauth add")
        replacement = _read_client_secret(client_secret_stdin, client_secret_env) if new_client_secret else None
        secret = replacement or oauth_store.client_secret(runtime.vault, name)
        local = runtime.vault.get_service(name).local
        obtained = _obtain(
            name, record.config, secret, local=local, open_browser=not no_browser, port=port, timeout=timeout
        )
        oauth_store.replace_grant(runtime.vault, name, obtained, replacement)
        runtime.audit.append(source="cli", service=name, action="oauth-login", decision="logged-in")
    click.echo(f"logged in to {name}")
    click.echo(_summary(obtained))


@oauth.command("status")
@click.argument("name", required=False)
def status(name: str | None) -> None:
    """Show each OAuth service's state: token expiry, refresh failures, whether a login is needed."""
    with open_runtime() as runtime:
        names = [name] if name else oauth_store.oauth_services(runtime.vault)
        if not names:
            click.echo("no OAuth services yet; add one with: clavis-mcp oauth add NAME ...")
        for each in names:
            found = oauth_store.credential_state(runtime.vault, each)
            if found is None:
                runtime.vault.get_service(each)
                raise InvalidOAuthConfig(f"{each!r} is not an OAuth service")
            click.echo(f"{each}: {found[0]}: {found[1]}")


def _obtain(
    name: str,
    config: OAuthConfig,
    secret: Secret | None,
    *,
    local: bool,
    open_browser: bool,
    port: int,
    timeout: float,
) -> TokenGrant:
    if config.grant == "client_credentials":
        request = token_request(config, secret, grant_type="client_credentials")
        return asyncio.run(obtain_grant(name, request, local=local))
    return asyncio.run(
        authorization_code_login(
            name, config, secret, local=local, port=port, open_browser=open_browser, say=click.echo, timeout=timeout
        )
    )


def _summary(grant: TokenGrant) -> str:
    expiry = "no expiry" if grant.expires_at is None else f"expires in {grant.expires_at - time.time():.0f} s"
    if grant.refresh_token is not None:
        return f"tokens stored in the vault (access token {expiry}; refreshed automatically)"
    return f"access token stored in the vault ({expiry}; no refresh token: run oauth login again when it stops working)"


def _read_client_secret(stdin: bool, env: str | None) -> Secret:
    if env:
        if env not in os.environ:
            raise click.UsageError(f"environment variable {env} is not set")
        return validate_secret(os.environ[env])
    if stdin:
        return validate_secret(sys.stdin.read().rstrip("\r\n"))
    if sys.stdin.isatty():
        return validate_secret(click.prompt("Client secret", hide_input=True, err=True))
    raise click.UsageError(
        "no client secret given: use --client-secret-stdin, --client-secret-env VAR, or --public-client"
    )


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.UsageError(f"--auth-param {text!r} must look like KEY=VALUE")
    return key, value


COMMANDS = [oauth]
