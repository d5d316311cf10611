"""Team mode verbs: run the server (``team serve``, ``team dev``) and manage it from anywhere.

The admin verbs (add, list, rotate, remove, user, key, audit) talk to the server named by
``CLAVIS_API_URL`` with the key in ``CLAVIS_API_KEY``; they never open or create a local vault.
``team add`` takes exactly the local ``add``'s options (the same click parameters) and builds the
service with the same validation, so a definition refused locally is refused here before it is
sent. Secrets and passwords come from a hidden prompt, stdin or an environment variable, never
argv; a created key is printed once.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any, Unpack

import click

from clavis_mcp.team.admin_client import AdminClient, service_definition
from clavis_mcp.vault import Secret, Service, clavis_home, parse_hosts, validate_name
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.auth import CREDENTIAL
from clavis_mcp.vault.auth.registry import OPTIONS as METHOD_OPTIONS
from clavis_mcp.vault.auth.registry import build as build_method
from clavis_mcp.vault.connectors import connector, load_catalog
from clavis_mcp.vault.service import normalise_methods, normalise_path_prefixes, validate_extra_headers

from . import service_commands as local_add
from .audit_commands import FilterOptions, _filter_options, build_filter
from .service_commands import confirm, emit, parse_expiry, read_secret

ROLES = click.Choice(["member", "admin"])
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# The local add's options that team add understands; any other one (added to add later) is refused if used.
_ADD_OPTIONS = {"name", "connector_name", "hosts", "auth", "header", "basic", "query", "local", "allow_http",
                "reveal", "secret_stdin", "secret_env", "catalog", "methods", "prefixes", "fixed", "expires",
                "as_json"}  # fmt: skip


def _client() -> AdminClient:
    return AdminClient.from_env()


@click.group("team")
def team() -> None:
    """Team mode: run the server (serve, dev) or manage it through CLAVIS_API_URL and CLAVIS_API_KEY."""


@team.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True, help="0 picks a free port.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes on one socket.")
def serve(host: str, port: int, workers: int) -> None:
    """Run one API replica; configuration from CLAVIS_TEAM_* variables (see docs/team-mode.md)."""
    from clavis_mcp.team.serve import serve as run

    run(host, port, workers)


@team.command("dev")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0 picks a free port.")
@click.option("--workers", type=click.IntRange(min=1), default=3, show_default=True, help="API worker processes.")
def dev(port: int, workers: int) -> None:
    """A throwaway stack (OpenBao dev, PostgreSQL, admin, workers) until Ctrl-C; prints the two variables."""
    from clavis_mcp.team.dev import run_dev

    sys.exit(run_dev(port=port, workers=workers))


@team.command("bootstrap")
@click.option("--bao-addr", envvar="BAO_ADDR", required=True, help="OpenBao's address (or BAO_ADDR).")
@click.option("--admin-email", required=True, help="The first admin's e-mail address.")
@click.option("--prefix", default="clavis", show_default=True, help="OpenBao mount and policy names start with it.")
@click.option("--password-stdin", is_flag=True, help="Read the admin's password from standard input.")
def bootstrap(bao_addr: str, admin_email: str, prefix: str, password_stdin: bool) -> None:
    """Set up a new deployment once, with OpenBao's root token (BAO_TOKEN) and the database
    (CLAVIS_TEAM_DATABASE_URL); print the replicas' environment and an admin key on stdout."""
    import os

    from clavis_mcp.team.bootstrap import bootstrap as run

    token, dsn = os.environ.get("BAO_TOKEN", ""), os.environ.get("CLAVIS_TEAM_DATABASE_URL", "")
    if not token or not dsn:
        raise click.UsageError("set BAO_TOKEN (OpenBao's root token) and CLAVIS_TEAM_DATABASE_URL; never on argv")
    password = _read_password(password_stdin)
    done = run(bao_addr, token, dsn, admin_email=admin_email, admin_password=password.reveal(), prefix=prefix)
    for name, value in sorted(done.env.items()):
        click.echo(f"{name}={value}")
    click.echo(f"CLAVIS_API_KEY={done.admin_key}")
    click.echo("the lines above are the replicas' environment and an admin key, shown once: keep them", err=True)


@team.command("migrate")
def migrate() -> None:
    """Bring the team database's schema up to this version (safe to run again), with the database
    owner's URL in CLAVIS_TEAM_DATABASE_URL: once before starting upgraded replicas."""
    import os

    import psycopg

    from clavis_mcp.team.schema import create_schema

    dsn = os.environ.get("CLAVIS_TEAM_DATABASE_URL", "")
    if not dsn:
        raise click.UsageError("set CLAVIS_TEAM_DATABASE_URL to the database owner's URL; never on argv")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            create_schema(conn)
    except psycopg.Error as exc:
        raise click.ClickException(
            f"the schema could not be brought up to date ({type(exc).__name__}); is CLAVIS_TEAM_DATABASE_URL the "
            "owner's URL (the replicas' role may not change tables)?"
        ) from None
    click.echo("the team database's schema is up to date", err=True)


def _team_add(**options: Any) -> None:
    service = service_from_options(**options)
    secret = read_secret(options["secret_stdin"], options["secret_env"])
    with _client() as client:
        client.add_service(service_definition(service), secret)
    emit(
        options["as_json"],
        {**local_add.service_view(service), "fingerprint": secret.fingerprint},
        [f"added {service.name} ({service.auth.describe()}) on {client.url} for "
         f"{', '.join(str(h) for h in service.hosts)}"],
    )  # fmt: skip


def service_from_options(**options: Any) -> Service:
    """The Service the local ``add`` would register from the same options (same rules, same errors).

    The team server keeps one secret per service: a method that needs more secret fields (sigv4's
    access key id, a ``{username}``) is refused here, before anything is sent."""
    unknown = sorted(
        k
        for k, v in options.items()
        if k not in _ADD_OPTIONS and k not in METHOD_OPTIONS and v not in (None, False, ())
    )
    if unknown or options.get("field_env"):
        given = ", ".join("--" + k.replace("_", "-") for k in unknown or ["field_env"])
        raise click.UsageError(f"team add does not take {given}: the team server keeps one secret per service")
    base = connector(options["connector_name"], load_catalog(clavis_home(), options.get("catalog")))
    method_options = {k: v for k, v in options.items() if k in METHOD_OPTIONS}
    header = options.get("header") or ()
    kind, kwargs = local_add._auth_options(  # the local add's rules: one of --header/--basic/--query, ...
        options.get("auth"), (header,) if isinstance(header, str) else header, options.get("basic"),
        options.get("query"), options.get("fixed") or (), method_options,
    )  # fmt: skip
    if kind is None:
        spec = base.auth.with_extra_headers(
            validate_extra_headers({**dict(base.auth.extra_headers), **kwargs["extra_headers"]})
        )
    else:
        spec = build_method(kind, **kwargs)
    extra_fields = [f for f in spec.secret_fields() if f != CREDENTIAL]
    if extra_fields:
        raise click.UsageError(
            f"{spec.kind} with the secret fields {', '.join(extra_fields)} is not supported in team mode yet: "
            "the team server keeps one secret per service"
        )
    hosts = options.get("hosts") or ()
    if not hosts and not base.hosts:
        raise click.UsageError(f"connector {base.name!r} has no default host: give --host HOST")
    expires = options.get("expires")
    return Service(
        name=validate_name(options["name"]),
        auth=spec,
        hosts=parse_hosts(list(hosts)) if hosts else base.hosts,
        connector=base.name,
        local=bool(options.get("local")),
        allow_http=bool(options.get("allow_http")),
        reveal=options.get("reveal") or "masked",
        methods=normalise_methods(options.get("methods") or ()),
        path_prefixes=normalise_path_prefixes(options.get("prefixes") or ()),
        created_at=time.time(),
        expires_at=parse_expiry(expires) if expires else None,
    )


team.add_command(
    click.Command(
        "add",
        params=[*local_add.add.params],
        callback=_team_add,
        help="Register service NAME on the team server, with the local add's options; the secret is sent "
        "once, over the API, and never read back.",
    )
)


@team.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_services(as_json: bool) -> None:
    """The services on the team server that this key may see; never a secret."""
    with _client() as client:
        rows = client.services()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no services on the team server yet; add one with: clavis-mcp team add NAME --host HOST")
    for row in rows:
        hosts = row.get("hosts") or []
        click.echo(f"{row.get('name', '?'):<20} {', '.join(map(str, hosts)):<40} {_auth_text(row.get('auth'))}")


def _auth_text(auth: object) -> str:
    if isinstance(auth, dict):
        return str(auth.get("kind") or auth.get("type") or json.dumps(auth, sort_keys=True))
    return "" if auth is None else str(auth)


@team.command("rotate")
@click.argument("name")
@click.option("--secret-stdin", is_flag=True, help="Read the new secret from standard input.")
@click.option("--secret-env", metavar="VAR", help="Read the new secret from environment variable VAR.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate(name: str, secret_stdin: bool, secret_env: str | None, as_json: bool) -> None:
    """Replace the secret of service NAME on the team server (the old value is not kept)."""
    validate_name(name)
    secret = read_secret(secret_stdin, secret_env, "New secret")
    with _client() as client:
        client.rotate(name, secret)
    emit(as_json, {"name": name, "fingerprint": secret.fingerprint}, [f"rotated {name}: now {secret.fingerprint}"])


@team.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def remove(name: str, yes: bool, as_json: bool) -> None:
    """Remove service NAME and destroy its secret on the team server (asks first unless --yes)."""
    validate_name(name)
    confirm(yes, f"removing {name}", f"remove {name} and its secret from the team server?")
    with _client() as client:
        client.remove(name)
    emit(as_json, {"removed": name}, [f"removed {name}"])


@team.group("user")
def user() -> None:
    """People who log in (POST /v1/auth/login) with an email and a password."""


@user.command("add")
@click.argument("email")
@click.option("--role", type=ROLES, default="member", show_default=True, help="admin manages; member uses.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_add(email: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user; the password comes from a hidden prompt or --password-stdin, never argv."""
    email = _email(email)
    password = _read_password(password_stdin)
    with _client() as client:
        client.add_user(email, password, role)
    emit(as_json, {"email": email, "role": role}, [f"added {role} {email}"])


def _keys_made_by(keys: list[dict[str, Any]], maker: str) -> list[str]:
    """The working keys ``maker`` made, and those made with them, and so on: what removing a user
    revokes (the server decides; this is what the confirmation names beforehand)."""
    makers, found = {maker}, True
    while found:
        found = False
        for key in keys:
            if str(key.get("created_by", "")).lower() in makers and f"key/{key['name']}" not in makers:
                makers.add(f"key/{key['name']}")
                found = True
    now = datetime.now(UTC)
    return sorted(
        str(key["name"])
        for key in keys
        if f"key/{key['name']}" in makers
        and not key.get("revoked")
        and not (key.get("expires_at") and datetime.fromisoformat(key["expires_at"]) <= now)
    )


def _email(text: str) -> str:
    if "@" not in text or any(c.isspace() for c in text):
        raise click.BadParameter(f"{text!r} is not an email address", param_hint="EMAIL")
    return text.lower()  # as the server stores it


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_list(as_json: bool) -> None:
    """The people who can log in: e-mail, role, when added; never a password hash."""
    with _client() as client:
        rows = client.users()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row.get('email', '?'):<40} {row.get('role', ''):<7} added {row.get('created_at', '')}")


@user.command("remove")
@click.argument("email")
@click.option("--keep-keys", is_flag=True, help="Keep the API keys EMAIL made working (they are listed).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_remove(email: str, keep_keys: bool, yes: bool, as_json: bool) -> None:
    """Remove user EMAIL: they cannot log in, their logins stop working at once on every replica,
    and the API keys they made are revoked (a departed person may hold a copy), unless --keep-keys."""
    email = _email(email)
    with _client() as client:
        made = [] if keep_keys else _keys_made_by(client.keys().get("keys", []), f"user/{email}")
        also = f" and revoke the {len(made)} API key(s) they made ({', '.join(made)})" if made else ""
        confirm(yes, f"removing {email}{also}", f"remove {email} from the team server, end their logins{also}?")
        done = client.remove_user(email, keep_keys=keep_keys)
    revoked, kept, demoted = (
        done.get("revoked_keys") or [],
        done.get("kept_keys") or [],
        done.get("demoted_users") or [],
    )
    lines = [f"removed {email}; their logins no longer work"]
    if revoked:
        lines.append(f"revoked the API keys they made: {', '.join(revoked)}")
    if kept:
        lines.append(f"kept the API keys they made: {', '.join(kept)} (revoke with `clavis-mcp team key revoke NAME`)")
    if demoted:
        lines.append(f"demoted to member the admins their logins made: {', '.join(demoted)}")
    emit(as_json, {"removed": email, "revoked_keys": revoked, "kept_keys": kept, "demoted_users": demoted}, lines)


@user.command("role")
@click.argument("email")
@click.argument("role", type=ROLES)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_role(email: str, role: str, as_json: bool) -> None:
    """Make user EMAIL a member or an admin; their logins end (they log in again with the new role) and
    the API keys those logins made are revoked."""
    with _client() as client:
        changed = client.change_user(_email(email), role=role)
    emit(as_json, changed, _logins_ended(changed, f"{changed.get('email', email)} is now {role}; their logins ended"))


@user.command("sign-out")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_sign_out(email: str, as_json: bool) -> None:
    """End every login of user EMAIL at once, on every replica, and revoke the API keys those logins made;
    their password still works."""
    with _client() as client:
        changed = client.change_user(_email(email), sign_out=True)
    emit(as_json, changed, _logins_ended(changed, f"signed {changed.get('email', email)} out everywhere"))


@user.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def user_password(email: str, password_stdin: bool, as_json: bool) -> None:
    """Set a new password for user EMAIL (hidden prompt or --password-stdin, never argv); their logins end
    and the API keys those logins made are revoked."""
    email = _email(email)
    password = _read_password(password_stdin)
    with _client() as client:
        changed = client.change_user(email, password=password)
    emit(as_json, changed, _logins_ended(changed, f"set a new password for {email}; their logins ended"))


def _logins_ended(changed: dict[str, Any], done: str) -> list[str]:
    """``done``, and the keys the server revoked with the logins (a copy of an admin's login could
    have made them), by name, so the admin knows which agents lose access."""
    revoked, demoted = changed.get("revoked_keys") or [], changed.get("demoted_users") or []
    return [
        done,
        *([f"revoked the API keys their logins made: {', '.join(revoked)}"] if revoked else []),
        *([f"demoted to member the admins their logins made: {', '.join(demoted)}"] if demoted else []),
    ]


def _read_password(from_stdin: bool) -> Secret:
    if from_stdin:
        value = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        raise click.UsageError("no password given: use --password-stdin or run in a terminal (never the command line)")
    if not value:
        raise click.UsageError("the password is empty")
    return Secret(value)


@team.group("key")
def key() -> None:
    """Scoped API keys for agents and scripts (what goes into CLAVIS_API_KEY)."""


def parse_duration(text: str | None) -> int | None:
    """``30d``, ``12h``, ``90m``, ``3600s``, ``2w`` as seconds; ``never`` or nothing as None."""
    if text is None or text == "never":
        return None
    match = _DURATION.match(text.strip().lower())
    if not match or int(match[1]) == 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 30d, 12h, 90m or never", param_hint="--expires")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


@key.command("create")
@click.argument("name")
@click.option("--services", required=True, help="Comma-separated services the key may use, e.g. a,b.")
@click.option("--expires", help="Lifetime: 30d, 12h, 90m, 2w or never (default: never).")
@click.option("--role", type=ROLES, default="member", show_default=True, help="admin keys can manage the server.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def key_create(name: str, services: str, expires: str | None, role: str, as_json: bool) -> None:
    """Create key NAME for the given services; the key is printed once and cannot be shown again."""
    names = [validate_name(s.strip()) for s in services.split(",") if s.strip()]
    if not names:
        raise click.BadParameter("name at least one service", param_hint="--services")
    with _client() as client:
        created = client.create_key(name, names, parse_duration(expires), role)
    if as_json:
        click.echo(json.dumps(created, indent=2))
        return
    click.echo(f"CLAVIS_API_KEY={created.get('key', '')}")
    scope = ", ".join(created.get("services") or names)
    click.echo(f"key {name} for {scope}, expires {created.get('expires_at') or 'never'}; shown once", err=True)
    maker = str(created.get("created_by") or "")
    if maker.startswith("user/"):
        click.echo(
            f"made with the login of {maker.removeprefix('user/')}: it is revoked when that person's logins end "
            "(logout, a new password, a sign-out, a role change); make a key meant to outlive them (a CI job's) "
            "with an admin API key as CLAVIS_API_KEY",
            err=True,
        )


@key.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def key_list(as_json: bool) -> None:
    """The keys: names, scopes, expiry, revocation; never a key."""
    with _client() as client:
        answer = client.keys()
    rows = answer.get("keys", []) if isinstance(answer, dict) else answer
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no keys yet; create one with: clavis-mcp team key create NAME --services a,b")
    for row in rows:
        state = "revoked" if row.get("revoked") or row.get("revoked_at") else "active"
        scope = ", ".join(row.get("services") or []) or "(none)"
        click.echo(f"{row.get('name', '?'):<20} {row.get('role', ''):<7} {state:<8} "
                   f"expires {row.get('expires_at') or 'never':<25} {scope}")  # fmt: skip


@key.command("revoke")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def key_revoke(name: str, as_json: bool) -> None:
    """Revoke key NAME; every replica refuses it from then on."""
    with _client() as client:
        client.revoke_key(name)
    emit(as_json, {"revoked": name}, [f"revoked {name}"])


@team.group("audit", invoke_without_command=True)
@_filter_options
@click.option("-n", "--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="The newest N matching records; 0 asks for all.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one record per line (for jq).")
@click.pass_context
def audit(ctx: click.Context, limit: int, as_json: bool, **filters: Unpack[FilterOptions]) -> None:
    """The team server's audit log, with the local audit's filters. See also `team audit verify`."""
    if ctx.invoked_subcommand is not None:
        return
    where = build_filter(**filters)
    with _client() as client:
        records = client.audit(audit_params(where, limit))
    # The server filters by service, agent, decision and time; status and host are applied here.
    records = [r for r in reversed(records) if where.matches(r)]  # newest last, as the local audit shows them
    for record in records:
        click.echo(json.dumps(record, sort_keys=True) if as_json else _audit_line(record))
    if not records and not as_json:
        click.echo("no matching audit records", err=True)


def audit_params(where: AuditFilter, limit: int) -> dict[str, object]:
    """The query string: times as ISO 8601 (parsed here, with the local audit's forms), the rest as given."""
    return {
        "service": where.service,
        "agent": where.agent,
        "decision": where.decision,
        "since": where.since.isoformat() if where.since else None,
        "until": where.until.isoformat() if where.until else None,
        "limit": limit or None,
    }


def _audit_line(record: dict[str, Any]) -> str:
    where = f"{record.get('method') or ''} {record.get('host') or ''}{record.get('path') or ''}".strip()
    keys = ("service", "action")
    parts = [record.get("time"), record.get("source") or record.get("agent"), *(record.get(k) for k in keys), where,
             record.get("status"), record.get("decision"), record.get("reason")]  # fmt: skip
    return "  ".join(str(p) for p in parts if p not in (None, ""))


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify(as_json: bool) -> None:
    """Check every chain and the signed checkpoints on the server; exit 1 on any problem."""
    with _client() as client:
        report = client.audit_verify()
    problems = list(report.get("problems") or [])
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif report.get("ok"):
        click.echo(f"OK: {report.get('records', 0)} records in {report.get('chains', 0)} chain(s) verified")
    else:
        click.echo(f"FAILED: {len(problems)} problem(s) in the team audit log", err=True)
        for problem in problems:
            click.echo(f"  {problem if isinstance(problem, str) else json.dumps(problem)}", err=True)
    if not report.get("ok"):
        sys.exit(1)


COMMANDS = [team]
