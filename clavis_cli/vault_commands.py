"""Vault verbs: init, add, list, remove. Secrets come from a hidden prompt, stdin or an
environment variable, never from argv."""

from __future__ import annotations

import json
import os
import sys
import time

import click

from vault import (
    AuthSpec,
    Service,
    Vault,
    clavis_home,
    parse_header_template,
    parse_hosts,
    validate_name,
    validate_secret,
)
from vault.service import validate_template

from .runtime import open_runtime


@click.command()
def init() -> None:
    """Create a vault (in $CLAVIS_HOME or the platform data folder) and its local CA."""
    from certs import LocalCA

    home = clavis_home()
    Vault.create(home).close()
    ca = LocalCA(home / "certs").ensure()
    click.echo(f"created vault {home}")
    click.echo(f"key store: key file {home / 'vault.key'} (readable by any process of this user)")
    click.echo(f"local CA: {ca.cert_path}")
    click.echo(f"CA fingerprint (SHA-256): {ca.fingerprint()}")


def _read_secret(secret_stdin: bool, secret_env: str | None) -> str:
    if secret_env:
        if secret_env not in os.environ:
            raise click.UsageError(f"environment variable {secret_env} is not set")
        return os.environ[secret_env]
    if secret_stdin:
        return sys.stdin.read().rstrip("\r\n")
    return click.prompt("Secret", hide_input=True, confirmation_prompt=False)


@click.command()
@click.argument("name")
@click.option("--host", "hosts", multiple=True, required=True, help="HOST[:PORT] or *.DOMAIN; repeatable.")
@click.option("--header", "header", help="Header template, e.g. 'Authorization: Bearer {secret}'.")
@click.option("--basic", "basic", help="Basic auth pair template, e.g. '{secret}:' or 'user:{secret}'.")
@click.option("--query", "query", help="Query parameter that carries the secret, e.g. 'key'.")
@click.option("--connector", default="generic", show_default=True, help="Connector type (informational).")
@click.option("--local", is_flag=True, help="Allow loopback/private addresses for this service's hosts.")
@click.option("--allow-http", is_flag=True, help="Allow injection over plain http:// (not recommended).")
@click.option("--reveal", type=click.Choice(["never", "masked", "full"]), default="masked", show_default=True)
@click.option("--secret-stdin", is_flag=True, help="Read the secret from standard input.")
@click.option("--secret-env", metavar="VAR", help="Read the secret from environment variable VAR.")
def add(
    name: str,
    hosts: tuple[str, ...],
    header: str | None,
    basic: str | None,
    query: str | None,
    connector: str,
    local: bool,
    allow_http: bool,
    reveal: str,
    secret_stdin: bool,
    secret_env: str | None,
) -> None:
    """Register a service NAME and store its secret (prompted, never on the command line)."""
    if sum(x is not None for x in (header, basic, query)) > 1:
        raise click.UsageError("choose one of --header, --basic, --query")
    if basic is not None:
        auth = AuthSpec(kind="basic", name="Authorization", template=validate_template(basic))
    elif query is not None:
        auth = AuthSpec(kind="query", name=query)
    else:
        auth = parse_header_template(header or "Authorization: Bearer {secret}")
    service = Service(
        name=validate_name(name),
        auth=auth,
        hosts=parse_hosts(list(hosts)),
        connector=connector,
        local=local,
        allow_http=allow_http,
        reveal=reveal,  # type: ignore[arg-type]
        created_at=time.time(),
    )
    with open_runtime() as runtime:
        secret = validate_secret(_read_secret(secret_stdin, secret_env))
        runtime.vault.add_service(service, secret)
        runtime.audit.append(source="cli", service=name, action="add", decision="added")
    click.echo(f"added {name} ({auth.describe()}) for {', '.join(str(h) for h in service.hosts)}")
    click.echo(f"secret fingerprint: {secret.fingerprint}")


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_services(as_json: bool) -> None:
    """List services (names, hosts, auth method), never their secrets."""
    with open_runtime() as runtime:
        services = runtime.vault.list_services()
    rows = [
        {
            "name": s.name,
            "connector": s.connector,
            "auth": s.auth.describe(),
            "hosts": [str(h) for h in s.hosts],
            "local": s.local,
            "reveal": s.reveal,
        }
        for s in services
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no services yet; add one with: clavis-mcp add NAME --host HOST")
    for row in rows:
        click.echo(f"{row['name']:<20} {', '.join(row['hosts']):<40} {row['auth']}")


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def remove(name: str, yes: bool) -> None:
    """Remove service NAME and destroy its secret."""
    with open_runtime() as runtime:
        runtime.vault.get_service(name)
        if not yes:
            click.confirm(f"remove {name} and its secret?", abort=True)
        runtime.vault.remove_service(name)
        runtime.audit.append(source="cli", service=name, action="remove", decision="removed")
    click.echo(f"removed {name}")


COMMANDS = [init, add, list_services, remove]
