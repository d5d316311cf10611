"""Service lifecycle verbs: add, list, show, rotate, edit, remove, export, import.

Secrets come from a hidden prompt on a terminal, ``--secret-stdin`` or ``--secret-env VAR``,
never from argv, and are never printed: output shows a fingerprint. Every verb has ``--json``.
Sensitive changes (add, rotate, edit, remove) are written to the audit log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import tomllib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import tomli_w

from clavis_mcp.vault import (
    InvalidService,
    Secret,
    Service,
    Vault,
    clavis_home,
    parse_hosts,
    validate_name,
    validate_secret,
)
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import INJECTED, TIME
from clavis_mcp.vault.auth import AuthMethod
from clavis_mcp.vault.connectors import GENERIC, connector, load_catalog
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.service import (
    AUTH_CHOICES,
    build_auth,
    normalise_methods,
    normalise_path_prefixes,
    parse_header_template,
    validate_extra_headers,
)

from .runtime import Runtime, open_runtime

REVEAL = click.Choice(["never", "masked", "full"])
IMPORT_ENV_PREFIX = "CLAVIS_SECRET_"


def read_secret(secret_stdin: bool, secret_env: str | None, label: str = "Secret") -> Secret:
    """From VAR, stdin, or a hidden prompt on a terminal; never blocks when there is no terminal."""
    if secret_env:
        if secret_env not in os.environ:
            raise click.UsageError(f"environment variable {secret_env} is not set")
        value = os.environ[secret_env]
    elif secret_stdin:
        value = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        value = click.prompt(label, hide_input=True, err=True)
    else:
        raise click.UsageError("no secret given: use --secret-stdin or --secret-env VAR (never the command line)")
    return validate_secret(value)


def _timestamp(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")


def parse_expiry(text: str) -> float | None:
    """``never`` or an ISO date/time (UTC unless it says otherwise)."""
    if text == "never":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date such as 2026-12-31 or 2026-12-31T18:00:00Z") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def service_view(service: Service, vault: Vault | None = None) -> dict[str, Any]:
    """Everything about a service but its secret: the one shape for list, show and --json."""
    return {
        "name": service.name,
        "connector": service.connector,
        "auth": oauth_store.describe_auth(vault, service) if vault else service.auth.describe(),
        "extra_headers": dict(service.auth.extra_headers),
        "hosts": [str(h) for h in service.hosts],
        "methods": list(service.methods),
        "path_prefixes": list(service.path_prefixes),
        "local": service.local,
        "allow_http": service.allow_http,
        "reveal": service.reveal,
        "created": _timestamp(service.created_at),
        "rotated": _timestamp(service.rotated_at),
        "expires": _timestamp(service.expires_at),
    }


def _auth_options(
    auth: str | None, header: str | None, basic: str | None, query: str | None, fixed: tuple[str, ...]
) -> tuple[str | None, dict[str, Any]]:
    """The auth kind and keyword arguments the options describe (kind None: none given)."""
    given = [name for name, value in (("--header", header), ("--basic", basic), ("--query", query)) if value]
    if len(given) > 1:
        raise click.UsageError("choose one of --header, --basic, --query")
    if auth == "oauth2":
        raise click.UsageError("oauth2 services are set up by the OAuth commands, not by add/edit")
    kind = auth or {"--header": "header", "--basic": "basic", "--query": "query"}.get(given[0] if given else "")
    kwargs: dict[str, Any] = {"extra_headers": _fixed_headers(fixed)}
    if header:
        if kind != "header":
            raise click.UsageError("--header goes with --auth header")
        spec = parse_header_template(header)
        kwargs.update(header=spec.name, template=spec.template)
    if basic:
        if kind != "basic":
            raise click.UsageError("--basic goes with --auth basic")
        kwargs["template"] = basic
    if query:
        if kind != "query":
            raise click.UsageError("--query goes with --auth query")
        kwargs["param"] = query
    if kind in ("header", "query") and not (header or query):
        raise click.UsageError(f"--auth {kind} needs {'--header' if kind == 'header' else '--query'}")
    return kind, kwargs


def _fixed_headers(fixed: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for item in fixed:
        name, sep, value = item.partition(":")
        if not sep:
            raise click.BadParameter(f"--fixed-header {item!r} must look like 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _audit(runtime: Runtime, name: str, action: str, decision: str, reason: str | None = None) -> None:
    runtime.audit.append(source="cli", service=name, action=action, decision=decision, reason=reason)


def emit(as_json: bool, data: object, text: list[str]) -> None:
    """Every verb's output: the JSON document for scripts, or the lines for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in text:
            click.echo(line)


def _policy_options(func: Any) -> Any:
    options = [
        click.option("--method", "methods", multiple=True, help="Allowed HTTP method; repeatable. Default: all."),
        click.option("--path-prefix", "prefixes", multiple=True, help="Allowed path prefix; repeatable."),
        click.option("--fixed-header", "fixed", multiple=True, help="Fixed non-secret header 'Name: value'."),
        click.option("--expires", help="Expiry date (ISO, UTC) or 'never'."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@click.argument("name")
@click.option("--connector", "connector_name", default=GENERIC, show_default=True, help="See: clavis-mcp connectors.")
@click.option("--host", "hosts", multiple=True, help="HOST[:PORT] or *.DOMAIN; repeatable. Default: the connector's.")
@click.option("--auth", type=click.Choice([*AUTH_CHOICES, "oauth2"]), help="Auth method. Default: the connector's.")
@click.option("--header", help="Header template, e.g. 'x-api-key: {secret}'.")
@click.option("--basic", help="Basic auth template: '{secret}:' (key as user) or 'user:{secret}'.")
@click.option("--query", help="Query parameter that carries the secret, e.g. 'key'.")
@click.option("--local", is_flag=True, help="Allow loopback/private addresses for this service's hosts.")
@click.option("--allow-http", is_flag=True, help="Allow injection over plain http:// (not recommended).")
@click.option("--reveal", type=REVEAL, default="masked", show_default=True, help="What get_credentials may show.")
@click.option("--secret-stdin", is_flag=True, help="Read the secret from standard input.")
@click.option("--secret-env", metavar="VAR", help="Read the secret from environment variable VAR.")
@click.option("--catalog", type=click.Path(path_type=Path, dir_okay=False), help="Extra connector catalog (TOML).")
@_policy_options
def add(
    name: str,
    connector_name: str,
    hosts: tuple[str, ...],
    auth: str | None,
    header: str | None,
    basic: str | None,
    query: str | None,
    local: bool,
    allow_http: bool,
    reveal: str,
    secret_stdin: bool,
    secret_env: str | None,
    catalog: Path | None,
    methods: tuple[str, ...],
    prefixes: tuple[str, ...],
    fixed: tuple[str, ...],
    expires: str | None,
    as_json: bool,
) -> None:
    """Register service NAME (from a connector, or generic) and store its secret, never taken from argv."""
    base = connector(connector_name, load_catalog(clavis_home(), catalog))
    kind, kwargs = _auth_options(auth, header, basic, query, fixed)
    if kind is None:
        fixed_headers = {**dict(base.auth.extra_headers), **kwargs["extra_headers"]}
        spec = base.auth.with_extra_headers(validate_extra_headers(fixed_headers))
    else:
        spec = build_auth(kind, **kwargs)
    if not hosts and not base.hosts:
        raise click.UsageError(f"connector {base.name!r} has no default host: give --host HOST")
    service = Service(
        name=validate_name(name),
        auth=spec,
        hosts=parse_hosts(list(hosts)) if hosts else base.hosts,
        connector=base.name,
        local=local,
        allow_http=allow_http,
        reveal=reveal,  # type: ignore[arg-type]
        methods=normalise_methods(methods),
        path_prefixes=normalise_path_prefixes(prefixes),
        created_at=time.time(),
        expires_at=parse_expiry(expires) if expires else None,
    )
    with open_runtime() as runtime:
        secret = read_secret(secret_stdin, secret_env)
        runtime.vault.add_service(service, secret)
        _audit(runtime, name, "add", "added")
    emit(
        as_json,
        {**service_view(service), "fingerprint": secret.fingerprint},
        [
            f"added {name} ({spec.describe()}) for {', '.join(str(h) for h in service.hosts)}",
            f"secret fingerprint: {secret.fingerprint}",
        ],
    )


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_services(as_json: bool) -> None:
    """List services (names, hosts, auth method), never their secrets."""
    with open_runtime() as runtime:
        rows = [service_view(s, runtime.vault) for s in runtime.vault.list_services()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no services yet; add one with: clavis-mcp add NAME --connector openai (or --host HOST)")
    for row in rows:
        click.echo(f"{row['name']:<20} {', '.join(row['hosts']):<40} {row['auth']}")


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(name: str, as_json: bool) -> None:
    """Show everything about service NAME except its secret: fingerprint, last use, rotation, expiry."""
    with open_runtime() as runtime:
        service = runtime.vault.get_service(name)
        secret = runtime.vault.secret(name)
        index = AuditIndex(runtime.audit.files)
        try:
            index.refresh()
            used = index.newest(AuditFilter(service=name, decision=INJECTED))
        finally:
            index.close()
        view = {
            **service_view(service, runtime.vault),
            "fingerprint": secret.fingerprint,
            "last_used": used.get(TIME) if used else None,
        }
    emit(as_json, view, [f"{key + ':':<15} {_plain(value)}" for key, value in view.items()])


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(any)"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "(none)"
    return "(never)" if value is None else str(value)


@click.command()
@click.argument("name")
@click.option("--secret-stdin", is_flag=True, help="Read the new secret from standard input.")
@click.option("--secret-env", metavar="VAR", help="Read the new secret from environment variable VAR.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate(name: str, secret_stdin: bool, secret_env: str | None, as_json: bool) -> None:
    """Replace the secret of service NAME; the old one is overwritten, not kept."""
    with open_runtime() as runtime:
        old = runtime.vault.secret(name)
        oauth_store.ensure_schema(runtime.vault)
        if oauth_store.is_oauth(runtime.vault.get_service(name)):
            raise InvalidService(
                f"{name!r} is an OAuth service: its access token is refreshed automatically and a rotated "
                f"value would be overwritten; to replace the grant run: clavis-mcp oauth login {name}"
            )
        secret = read_secret(secret_stdin, secret_env, "New secret")
        if secret == old:
            raise InvalidService(f"the new secret of {name!r} is the same as the current one; nothing was changed")
        service = runtime.vault.rotate_secret(name, secret)
        _audit(runtime, name, "rotate", "rotated")
    emit(
        as_json,
        {
            "name": name,
            "fingerprint": secret.fingerprint,
            "previous": old.fingerprint,
            "rotated": _timestamp(service.rotated_at),
        },
        [f"rotated {name}: {old.fingerprint} -> {secret.fingerprint}"],
    )


@click.command()
@click.argument("name")
@click.option("--host", "hosts", multiple=True, help="Replace the host rules; repeatable.")
@click.option("--auth", type=click.Choice([*AUTH_CHOICES, "oauth2"]), help="Replace the auth method.")
@click.option("--header", help="Header template, e.g. 'x-api-key: {secret}'.")
@click.option("--basic", help="Basic auth template: '{secret}:' or 'user:{secret}'.")
@click.option("--query", help="Query parameter that carries the secret.")
@click.option("--reveal", type=REVEAL, help="What get_credentials may show.")
@click.option("--local/--no-local", default=None, help="Allow loopback/private addresses.")
@click.option("--allow-http/--no-allow-http", default=None, help="Allow injection over plain http://.")
@click.option("--any-method", is_flag=True, help="Remove the method restriction.")
@click.option("--any-path", is_flag=True, help="Remove the path restriction.")
@_policy_options
def edit(
    name: str,
    hosts: tuple[str, ...],
    auth: str | None,
    header: str | None,
    basic: str | None,
    query: str | None,
    reveal: str | None,
    local: bool | None,
    allow_http: bool | None,
    any_method: bool,
    any_path: bool,
    methods: tuple[str, ...],
    prefixes: tuple[str, ...],
    fixed: tuple[str, ...],
    expires: str | None,
    as_json: bool,
) -> None:
    """Change the non-secret fields of service NAME; options not given stay as they are."""
    kind, kwargs = _auth_options(auth, header, basic, query, fixed)
    with open_runtime() as runtime:
        oauth_store.ensure_schema(runtime.vault)  # an OAuth service stored by an older version reads as oauth2
        current = runtime.vault.get_service(name)
        spec: AuthMethod = current.auth
        if kind is not None:
            if oauth_store.is_oauth(current):
                raise click.UsageError(f"{name!r} is an OAuth service: its auth stays oauth2 (--fixed-header applies)")
            spec = build_auth(kind, **kwargs)
        elif fixed:
            spec = spec.with_extra_headers(validate_extra_headers(kwargs["extra_headers"]))
        changes: dict[str, Any] = {"auth": spec}
        if hosts:
            changes["hosts"] = parse_hosts(list(hosts))
        if reveal:
            changes["reveal"] = reveal
        if local is not None:
            changes["local"] = local
        if allow_http is not None:
            changes["allow_http"] = allow_http
        if methods or any_method:
            changes["methods"] = normalise_methods(methods)
        if prefixes or any_path:
            changes["path_prefixes"] = normalise_path_prefixes(prefixes)
        if expires:
            changes["expires_at"] = parse_expiry(expires)
        updated = runtime.vault.update_service(replace(current, **changes))
        changed = sorted(k for k, v in changes.items() if getattr(current, k) != v)
        _audit(runtime, name, "edit", "edited", reason="changed: " + (", ".join(changed) or "nothing"))
    emit(as_json, service_view(updated), [f"edited {name}: {', '.join(changed) or 'nothing changed'}"])


@click.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def remove(name: str, yes: bool, as_json: bool) -> None:
    """Remove service NAME and destroy its secret (asks first unless --yes)."""
    with open_runtime() as runtime:
        runtime.vault.get_service(name)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(f"removing {name} needs confirmation: run it in a terminal or pass --yes")
            click.confirm(f"remove {name} and its secret?", abort=True, err=True)
        runtime.vault.remove_service(name)
        _audit(runtime, name, "remove", "removed")
    emit(as_json, {"removed": name}, [f"removed {name}"])


def definition(service: Service) -> dict[str, Any]:
    """A service as an export table: every field needed to re-create it, never a secret."""
    auth = service.auth
    table: dict[str, Any] = {"connector": service.connector, "hosts": [str(h) for h in service.hosts]}
    table.update(auth.options())
    if auth.extra_headers:
        table["extra_headers"] = dict(auth.extra_headers)
    table.update(
        methods=list(service.methods),
        path_prefixes=list(service.path_prefixes),
        reveal=service.reveal,
        local=service.local,
        allow_http=service.allow_http,
    )
    if service.expires_at is not None:
        table["expires"] = _timestamp(service.expires_at)
    return table


def from_definition(name: str, table: dict[str, Any]) -> Service:
    """Validate one imported table exactly like `add` would; raise InvalidService naming the service."""
    try:
        known = {"connector", "hosts", "auth", "header", "template", "param", "extra_headers", "methods",
                 "path_prefixes", "reveal", "local", "allow_http", "expires"}  # fmt: skip
        unknown = set(table) - known
        if unknown:
            raise InvalidService(f"unknown fields {sorted(unknown)}")
        if table.get("reveal", "masked") not in ("never", "masked", "full"):
            raise InvalidService("reveal must be never, masked or full")
        return Service(
            name=validate_name(name),
            auth=build_auth(
                str(table.get("auth", "bearer")),
                header=table.get("header"),
                template=table.get("template"),
                param=table.get("param"),
                extra_headers={str(k): str(v) for k, v in dict(table.get("extra_headers", {})).items()},
            ),
            hosts=parse_hosts(list(table.get("hosts", []))),
            connector=str(table.get("connector", GENERIC)),
            local=bool(table.get("local", False)),
            allow_http=bool(table.get("allow_http", False)),
            reveal=table.get("reveal", "masked"),
            methods=normalise_methods(list(table.get("methods", []))),
            path_prefixes=normalise_path_prefixes(list(table.get("path_prefixes", []))),
            created_at=time.time(),
            expires_at=parse_expiry(str(table["expires"])) if "expires" in table else None,
        )
    except (InvalidService, click.BadParameter) as exc:
        raise InvalidService(f"service {name!r}: {exc}") from None


@click.command("export")
@click.option(
    "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="File to write (default: stdout)."
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML (same tables).")
def export_services(output: Path | None, as_json: bool) -> None:
    """Write the service definitions as TOML, without any secret (for backup or another machine)."""
    with open_runtime() as runtime:
        services = runtime.vault.list_services()
    tables = {"services": {s.name: definition(s) for s in services}}
    if as_json:
        text = json.dumps(tables, indent=2) + "\n"
    else:
        text = "# clavis-mcp services (no secrets): clavis-mcp import FILE\n" + tomli_w.dumps(tables)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"exported {len(services)} service(s) to {output}", err=True)


def import_env_var(name: str) -> str:
    return IMPORT_ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", name.upper())


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def import_services(path: Path, as_json: bool) -> None:
    """Add the services defined in a TOML file (from `export`); all of them or none.

    Each secret is asked for on a terminal, or read from CLAVIS_SECRET_<NAME> (upper case,
    non-alphanumerics as '_'), e.g. CLAVIS_SECRET_MY_OPENAI for my-openai.
    """
    try:
        tables = tomllib.loads(path.read_text(encoding="utf-8")).get("services", {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidService(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(tables, dict) or not tables:
        raise InvalidService(f"{path} defines no [services.NAME] tables")
    services = [from_definition(name, table) for name, table in tables.items()]
    with open_runtime() as runtime:
        entries = []
        for service in services:
            var = import_env_var(service.name)
            if var in os.environ:
                entries.append((service, validate_secret(os.environ[var])))
            elif sys.stdin.isatty():
                entries.append((service, read_secret(False, None, f"Secret for {service.name}")))
            else:
                raise click.UsageError(f"no secret for {service.name}: set {var} or run the import in a terminal")
        runtime.vault.add_services(entries)
        for service, _ in entries:
            _audit(runtime, service.name, "add", "added", reason=f"imported from {path.name}")
    emit(
        as_json,
        [{**service_view(s), "fingerprint": secret.fingerprint} for s, secret in entries],
        [f"imported {s.name} ({secret.fingerprint})" for s, secret in entries],
    )


COMMANDS = [add, list_services, show, rotate, edit, remove, export_services, import_services]
