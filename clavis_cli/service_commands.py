"""Service lifecycle verbs: add, list, show, rotate, edit, remove, export, import.

Secrets come from a hidden prompt on a terminal, ``--secret-stdin`` or ``--secret-env VAR``,
never from argv, and are never printed: output shows a fingerprint. Or a secret stays where the
user keeps it: ``--secret-ref op://...`` / ``--field-ref FIELD=REF`` store the reference (not
secret, so shown) and the proxy resolves it at use time (``vault/refs``). Every verb has ``--json``.
Sensitive changes (add, rotate, edit, remove) are written to the audit log.
"""

from __future__ import annotations

import base64
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
    ClavisError,
    InvalidService,
    Secret,
    Service,
    UnknownService,
    Vault,
    clavis_home,
    parse_hosts,
    validate_name,
    validate_secret,
)
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import INJECTED, TIME
from clavis_mcp.vault.auth import CREDENTIAL, AuthMethod
from clavis_mcp.vault.auth.fields import validate_field_name
from clavis_mcp.vault.auth.registry import OPTIONS as METHOD_OPTIONS
from clavis_mcp.vault.auth.registry import build as build_method
from clavis_mcp.vault.connectors import GENERIC, connector, load_catalog
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.refs import parse as parse_ref
from clavis_mcp.vault.refs import stored as stored_ref
from clavis_mcp.vault.service import (
    AUTH_CHOICES,
    normalise_methods,
    normalise_path_prefixes,
    parse_header_template,
    validate_extra_headers,
)

from .runtime import Runtime, open_runtime, read_bounded_text
from .secret_export import export_passphrase, export_sealed, open_secrets, secrets_format
from .secret_refs import field_refs, where
from .service_extras import (
    EXTRA_KEYS,
    agents_table,
    apply_extras,
    check_agents,
    check_extras,
    extras_of,
    import_agents,
    import_oauth,
    refuse_existing_agents,
    require_oauth_tokens,
)

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
        "secret_fields": list(service.auth.secret_fields()),
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


# Which --auth each method option belongs to (by the prefix of its name).
OPTION_OWNERS = {"aws_": "sigv4", "unsigned_payload": "sigv4", "hmac_": "hmac", "body_": "body", "path_": "path",
                 "app_id": "github-app", "installation_id": "github-app", "api_url": "github-app"}  # fmt: skip
# How the prompts name each secret field (the credential of an AWS service is its secret key).
FIELD_LABELS = {
    "access_key_id": "AWS access key id",
    "session_token": "AWS session token (empty: none)",
    "username": "User name",
}
CREDENTIAL_LABELS = {"sigv4": "AWS secret access key", "basic": "Password or key", "hmac": "HMAC signing key",
                     "github-app": "GitHub App private key (base64 of the .pem)"}  # fmt: skip


def _auth_options(
    auth: str | None,
    header: tuple[str, ...],
    basic: str | None,
    query: str | None,
    fixed: tuple[str, ...],
    method_options: dict[str, Any] | None = None,
) -> tuple[str | None, dict[str, Any]]:
    """The auth kind and keyword arguments the options describe (kind None: none given)."""
    given = [name for name, value in (("--header", header), ("--basic", basic), ("--query", query)) if value]
    if len(given) > 1:
        raise click.UsageError("choose one of --header, --basic, --query")
    if auth == "oauth2":
        raise click.UsageError("oauth2 services are set up by the OAuth commands, not by add/edit")
    kind = auth or {"--header": "header", "--basic": "basic", "--query": "query"}.get(given[0] if given else "")
    kwargs: dict[str, Any] = {"extra_headers": _fixed_headers(fixed)}
    for name, value in (method_options or {}).items():
        if value in (None, False):
            continue
        owner = next(k for prefix, k in OPTION_OWNERS.items() if name.startswith(prefix))
        if kind != owner:
            raise click.UsageError(f"--{name.replace('_', '-')} goes with --auth {owner}")
        kwargs[name] = value
    if header:
        if kind == "headers":
            kwargs["headers"] = list(header)
        elif kind != "header":
            raise click.UsageError("--header goes with --auth header (or several with --auth headers)")
        elif len(header) > 1:
            raise click.UsageError("--auth header takes one --header; for several use --auth headers")
        else:
            spec = parse_header_template(header[0])
            kwargs.update(header=spec.name, template=spec.template)
    if basic:
        if kind != "basic":
            raise click.UsageError("--basic goes with --auth basic")
        kwargs["template"] = basic
    if query:
        if kind != "query":
            raise click.UsageError("--query goes with --auth query")
        kwargs["param"] = query
    if kind in ("header", "query", "headers") and not (header or query):
        raise click.UsageError(f"--auth {kind} needs {'--query' if kind == 'query' else '--header'}")
    return kind, kwargs


def _method_options(func: Any) -> Any:
    """The options of the methods beyond header/basic/query (docs/connectors.md has an example of each)."""
    options = [
        click.option("--aws-region", help="sigv4: region, e.g. eu-west-1. Default: read from the host."),
        click.option("--aws-service", help="sigv4: signing name, e.g. s3. Default: read from the host."),
        click.option("--unsigned-payload", is_flag=True, default=None, help="sigv4: sign UNSIGNED-PAYLOAD (S3)."),
        click.option("--hmac-header", help="hmac: header carrying the signature. Default: X-Signature."),
        click.option("--hmac-template", help="hmac: its value, with {signature} (and {timestamp}, {key_id})."),
        click.option("--hmac-parts", help="hmac: canonical parts, e.g. timestamp,method,path,query,body_sha256."),
        click.option("--hmac-separator", help="hmac: what joins the parts (escapes allowed). Default: \\n."),
        click.option("--hmac-timestamp-header", help="hmac: header carrying the timestamp ('' for none)."),
        click.option("--hmac-timestamp-format", type=click.Choice(["unix", "unix_ms", "iso8601", "http"])),
        click.option("--hmac-encoding", type=click.Choice(["hex", "base64"]), help="hmac: signature encoding."),
        click.option("--hmac-key-format", type=click.Choice(["text", "base64", "hex"]), help="hmac: stored key form."),
        click.option("--hmac-key-id", help="hmac: the key id (not secret), for {key_id} and --hmac-key-id-header."),
        click.option("--hmac-key-id-header", help="hmac: header carrying the key id."),
        click.option("--body-field", help="body: the JSON or form field that carries the key."),
        click.option("--body-format", type=click.Choice(["json", "form"]), help="body: json (default) or form."),
        click.option("--path-template", help="path: where the key goes in the path, e.g. '/bot{secret}/'."),
        click.option("--app-id", help="github-app: the App's id (or client id)."),
        click.option("--installation-id", help="github-app: the installation to act as."),
        click.option("--api-url", help="github-app: the API root. Default: https://api.github.com."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _method_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the method options from a command's keyword arguments."""
    return {name: kwargs.pop(name) for name in METHOD_OPTIONS if name in kwargs}


def _field_env(items: tuple[str, ...]) -> dict[str, str]:
    """``--field-env FIELD=VAR`` pairs: the secret field and the environment variable holding it."""
    pairs = {}
    for item in items:
        field, sep, var = item.partition("=")
        if not sep or not var:
            raise click.BadParameter(f"--field-env {item!r} must look like access_key_id=AWS_ACCESS_KEY_ID")
        pairs[validate_field_name(field.strip())] = var.strip()
    return pairs


def read_fields(
    spec: AuthMethod, field_env: dict[str, str], prefix: str | None = None, by_ref: frozenset[str] = frozenset()
) -> dict[str, Secret]:
    """The method's secret fields other than the credential and those given ``by_ref`` (--field-ref):
    from --field-env (or ``prefix``+FIELD variables on import), else a hidden prompt on a terminal;
    a required field missing without a terminal is an error that says how to give it."""
    fields = [f for f in spec.secret_fields() if f != CREDENTIAL and f not in by_ref]
    unknown = set(field_env) - set(fields)
    if unknown:
        raise click.UsageError(f"{spec.kind} has no secret field {', '.join(sorted(unknown))}; it uses: "
                               f"{', '.join(spec.secret_fields())}")  # fmt: skip
    values: dict[str, Secret] = {}
    for field in fields:
        optional = field in spec.optional_fields()
        var = field_env.get(field) or (prefix + field.upper() if prefix else None)
        if var and var in os.environ:
            values[field] = validate_secret(os.environ[var])
        elif var and field in field_env:
            raise click.UsageError(f"environment variable {var} is not set")
        elif sys.stdin.isatty():
            label = FIELD_LABELS.get(field, f"Secret field {field}")
            value = click.prompt(label, hide_input=True, err=True, default="" if optional else None, show_default=False)
            if value:
                values[field] = validate_secret(value)
        elif not optional:
            raise click.UsageError(f"{spec.kind} needs the secret field {field}: pass --field-env {field}=VAR "
                                   "(never the value on the command line)")  # fmt: skip
    return values


def pem_secret(path: Path) -> Secret:
    """A PEM key file as one line (base64 of the file), the form a secret is stored in."""
    data = path.read_bytes()
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise click.BadParameter(f"{path} is not a PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    return validate_secret(base64.b64encode(data).decode("ascii"))


def store_fields(vault: Vault, name: str, fields: dict[str, Secret]) -> None:
    """Store the extra fields of a service just added; on failure remove it (no half service)."""
    try:
        for field, secret in fields.items():
            vault.set_secret(name, field, secret)
    except BaseException:
        vault.remove_service(name)
        raise


def field_fingerprints(vault: Vault, service: Service) -> dict[str, str]:
    """Each secret field's fingerprint, "(reference)" for one kept elsewhere (``secret_location``
    says where), or "(not stored)": show never prints a value."""
    result: dict[str, str] = {}
    if service.auth.kind == "oauth2":
        return result  # its tokens are kept and shown by the OAuth commands
    locations = where(vault, service)
    for field in service.auth.secret_fields():
        try:
            stored = vault.secret(service.name, field)
        except UnknownService:
            result[field] = "(not stored)"
            continue
        result[field] = "(reference)" if "://" in locations.get(field, "") else stored.fingerprint
    return result


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


def confirm(yes: bool, what: str, question: str) -> None:
    """Ask ``question`` unless --yes; with no terminal to ask on, refuse and name --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{what} needs confirmation: run it in a terminal or pass --yes")
    click.confirm(question, abort=True, err=True)


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
@click.option("--header", multiple=True, help="Header template, e.g. 'x-api-key: {secret}'; several: --auth headers.")
@click.option("--basic", help="Basic auth template: '{secret}:', 'user:{secret}' or '{username}:{secret}'.")
@click.option("--query", help="Query parameter that carries the secret, e.g. 'key'.")
@_method_options
@click.option("--field-env", "field_env", multiple=True, metavar="FIELD=VAR", help="Another secret field from VAR.")
@click.option(
    "--private-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="github-app: the App's private key (.pem), stored as the secret.",
)
@click.option("--local", is_flag=True, help="Allow loopback/private addresses for this service's hosts.")
@click.option("--allow-http", is_flag=True, help="Allow injection over plain http:// (not recommended).")
@click.option("--reveal", type=REVEAL, default="masked", show_default=True, help="What get_credentials may show.")
@click.option("--secret-stdin", is_flag=True, help="Read the secret from standard input.")
@click.option("--secret-env", metavar="VAR", help="Read the secret from environment variable VAR.")
@click.option("--secret-ref", metavar="REF", help="Keep the secret where it is: op://, bao://, env://, ... (see docs).")
@click.option("--field-ref", "field_ref", multiple=True, metavar="FIELD=REF", help="Another secret field by reference.")
@click.option("--catalog", type=click.Path(path_type=Path, dir_okay=False), help="Extra connector catalog (TOML).")
@_policy_options
def add(
    name: str,
    connector_name: str,
    hosts: tuple[str, ...],
    auth: str | None,
    header: tuple[str, ...],
    basic: str | None,
    query: str | None,
    field_env: tuple[str, ...],
    private_key_file: Path | None,
    local: bool,
    allow_http: bool,
    reveal: str,
    secret_stdin: bool,
    secret_env: str | None,
    secret_ref: str | None,
    field_ref: tuple[str, ...],
    catalog: Path | None,
    methods: tuple[str, ...],
    prefixes: tuple[str, ...],
    fixed: tuple[str, ...],
    expires: str | None,
    as_json: bool,
    **method_options: Any,
) -> None:
    """Register service NAME (from a connector, or generic) and store its secret, never taken from argv.

    A method with several secret fields (sigv4's access_key_id, basic's {username}, a headers
    template's {app_id}) asks for each on a terminal, or reads them with --field-env FIELD=VAR.
    A secret kept elsewhere is given as a reference instead: --secret-ref 'op://Private/OpenAI/credential',
    --field-ref access_key_id=bao://secret/aws#key_id; it is resolved at use time, never stored here.
    """
    base = connector(connector_name, load_catalog(clavis_home(), catalog))
    given = _method_kwargs(method_options)
    inherited: dict[str, Any] = {}
    if auth is None and not (header or basic or query) and any(v not in (None, False) for v in given.values()):
        auth = base.auth.kind  # --aws-region with --connector aws: the connector's method, these options on top
        inherited = {k: v for k, v in base.auth.options().items() if k != "auth"}
        fixed = (*(f"{k}: {v}" for k, v in base.auth.extra_headers), *fixed)
    kind, kwargs = _auth_options(auth, header, basic, query, fixed, given)
    kwargs = {**inherited, **kwargs}
    if kind is None:
        fixed_headers = {**dict(base.auth.extra_headers), **kwargs["extra_headers"]}
        spec = base.auth.with_extra_headers(validate_extra_headers(fixed_headers))
    else:
        spec = build_method(kind, **kwargs)
    envs = _field_env(field_env)
    refs = field_refs(field_ref)
    credential_ref = parse_ref(secret_ref) if secret_ref else refs.pop(CREDENTIAL, None)
    if credential_ref is not None and (secret_stdin or secret_env or private_key_file):
        raise click.UsageError("--secret-ref replaces --secret-stdin, --secret-env and --private-key-file: give one")
    if set(refs) & set(envs):
        raise click.UsageError(
            f"give {', '.join(sorted(set(refs) & set(envs)))} by --field-env or --field-ref, not both"
        )
    unknown = set(refs) - set(spec.secret_fields())
    if unknown:
        raise click.UsageError(f"{spec.kind} has no secret field {', '.join(sorted(unknown))}; it uses: "
                               f"{', '.join(spec.secret_fields())}")  # fmt: skip
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
        if credential_ref is not None:
            secret = stored_ref(credential_ref)
        elif private_key_file is not None:
            if spec.kind != "github-app":
                raise click.UsageError("--private-key-file goes with --auth github-app")
            secret = pem_secret(private_key_file)
        else:
            secret = read_secret(secret_stdin, secret_env, CREDENTIAL_LABELS.get(spec.kind, "Secret"))
        fields = read_fields(spec, envs, by_ref=frozenset(refs))
        runtime.vault.add_service(service, secret)
        store_fields(runtime.vault, name, {**fields, **{f: stored_ref(r) for f, r in refs.items()}})
        located = {
            **({CREDENTIAL: str(credential_ref)} if credential_ref else {}),
            **{f: str(r) for f, r in refs.items()},
        }
        _audit(runtime, name, "add", "added", reason="; ".join(f"{f} from {r}" for f, r in located.items()) or None)
    prints = {field: value.fingerprint for field, value in fields.items()}
    fingerprint = None if credential_ref is not None else secret.fingerprint
    emit(
        as_json,
        {**service_view(service), "fingerprint": fingerprint, "fields": prints, "secret_refs": located},
        [
            f"added {name} ({spec.describe()}) for {', '.join(str(h) for h in service.hosts)}",
            *([f"secret fingerprint: {fingerprint}"] if fingerprint else []),
            *(f"{field} fingerprint: {fp}" for field, fp in prints.items()),
            *(f"{field} kept at: {ref} (resolved at use, never stored here)" for field, ref in located.items()),
        ],
    )


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_services(as_json: bool) -> None:
    """List services (names, hosts, auth method), never their secrets."""
    with open_runtime() as runtime:
        rows = [{**service_view(s, runtime.vault), "secret_location": where(runtime.vault, s)}
                for s in runtime.vault.list_services()]  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no services yet; add one with: clavis-mcp add NAME --connector openai (or --host HOST)")
    for row in rows:
        refs = [f"{f}: {r}" if f != CREDENTIAL else r for f, r in row["secret_location"].items() if "://" in r]
        kept = f"  (secret at {', '.join(refs)})" if refs else ""
        click.echo(f"{row['name']:<20} {', '.join(row['hosts']):<40} {row['auth']}{kept}")


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
        located = where(runtime.vault, service)
        view = {
            **service_view(service, runtime.vault),
            "fingerprint": "(reference)" if "://" in located.get(CREDENTIAL, "") else secret.fingerprint,
            "field_fingerprints": field_fingerprints(runtime.vault, service),
            "secret_location": located,
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
@click.option("--secret-ref", metavar="REF", help="Keep the new secret where it is: op://, bao://, env://, ...")
@click.option("--field", default=CREDENTIAL, show_default=True, help="Which secret field to replace.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rotate(name: str, secret_stdin: bool, secret_env: str | None, secret_ref: str | None, field: str,
           as_json: bool) -> None:  # fmt: skip
    """Replace the secret of service NAME (or one of its other fields); the old one is overwritten, not kept.
    With --secret-ref the field becomes (or points to another) reference; a typed secret replaces a reference."""
    if secret_ref and (secret_stdin or secret_env):
        raise click.UsageError("--secret-ref replaces --secret-stdin and --secret-env: give one")
    if field != CREDENTIAL:
        _rotate_field(name, field, secret_stdin, secret_env, as_json, secret_ref)
        return
    with open_runtime() as runtime:
        old = runtime.vault.secret(name)
        oauth_store.ensure_schema(runtime.vault)
        if oauth_store.is_oauth(runtime.vault.get_service(name)):
            raise InvalidService(
                f"{name!r} is an OAuth service: its access token is refreshed automatically and a rotated "
                f"value would be overwritten; to replace the grant run: clavis-mcp oauth login {name}"
            )
        if secret_ref:
            secret = stored_ref(parse_ref(secret_ref))
        else:
            secret = read_secret(secret_stdin, secret_env, "New secret")
        if secret == old:
            raise InvalidService(f"the new secret of {name!r} is the same as the current one; nothing was changed")
        service = runtime.vault.rotate_secret(name, secret)
        _audit(runtime, name, "rotate", "rotated", reason=f"credential from {secret_ref}" if secret_ref else None)
    if secret_ref:
        emit(as_json, {"name": name, "secret_ref": secret_ref, "rotated": _timestamp(service.rotated_at)},
             [f"rotated {name}: the secret is now kept at {secret_ref}"])  # fmt: skip
        return
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


def _rotate_field(
    name: str, field: str, secret_stdin: bool, secret_env: str | None, as_json: bool, secret_ref: str | None = None
) -> None:
    with open_runtime() as runtime:
        service = runtime.vault.get_service(name)
        if field not in service.auth.secret_fields() or service.auth.kind == "oauth2":
            raise click.UsageError(f"{name!r} ({service.auth.kind}) has no secret field {field!r}; it uses: "
                                   f"{', '.join(service.auth.secret_fields())}")  # fmt: skip
        old = field_fingerprints(runtime.vault, service)[field]
        if secret_ref:
            secret = stored_ref(parse_ref(secret_ref))
        else:
            secret = read_secret(secret_stdin, secret_env, FIELD_LABELS.get(field, f"New {field}"))
        runtime.vault.set_secret(name, field, secret)
        reason = f"field {field}" + (f" from {secret_ref}" if secret_ref else "")
        _audit(runtime, name, "rotate", "rotated", reason=reason)
    if secret_ref:
        emit(as_json, {"name": name, "field": field, "secret_ref": secret_ref},
             [f"rotated {name} {field}: now kept at {secret_ref}"])  # fmt: skip
        return
    emit(as_json, {"name": name, "field": field, "fingerprint": secret.fingerprint, "previous": old},
         [f"rotated {name} {field}: {old} -> {secret.fingerprint}"])  # fmt: skip


@click.command()
@click.argument("name")
@click.option("--host", "hosts", multiple=True, help="Replace the host rules; repeatable.")
@click.option("--auth", type=click.Choice([*AUTH_CHOICES, "oauth2"]), help="Replace the auth method.")
@click.option("--header", multiple=True, help="Header template, e.g. 'x-api-key: {secret}'; several: --auth headers.")
@click.option("--basic", help="Basic auth template: '{secret}:', 'user:{secret}' or '{username}:{secret}'.")
@click.option("--query", help="Query parameter that carries the secret.")
@_method_options
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
    header: tuple[str, ...],
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
    **method_options: Any,
) -> None:
    """Change the non-secret fields of service NAME; options not given stay as they are.

    A new method that uses secret fields the service has not stored yet is refused: add those
    with ``rotate NAME --field FIELD`` first, or remove and add the service again."""
    kind, kwargs = _auth_options(auth, header, basic, query, fixed, _method_kwargs(method_options))
    with open_runtime() as runtime:
        oauth_store.ensure_schema(runtime.vault)  # an OAuth service stored by an older version reads as oauth2
        current = runtime.vault.get_service(name)
        spec: AuthMethod = current.auth
        if kind is not None:
            if oauth_store.is_oauth(current):
                raise click.UsageError(f"{name!r} is an OAuth service: its auth stays oauth2 (--fixed-header applies)")
            spec = build_method(kind, **kwargs)
            missing = [f for f, fp in field_fingerprints(runtime.vault, replace(current, auth=spec)).items()
                       if fp == "(not stored)" and f not in spec.optional_fields()]  # fmt: skip
            if missing:
                raise click.UsageError(f"--auth {kind} needs the secret field(s) {', '.join(missing)}, not stored for "
                                       f"{name}; remove and add the service again with them")  # fmt: skip
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
        confirm(yes, f"removing {name}", f"remove {name} and its secret?")
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
                 "path_prefixes", "reveal", "local", "allow_http", "expires", "secret_refs",
                 *METHOD_OPTIONS, *EXTRA_KEYS}  # fmt: skip
        unknown = set(table) - known
        if unknown:
            raise InvalidService(f"unknown fields {sorted(unknown)}")
        check_extras(name, table)
        if table.get("reveal", "masked") not in ("never", "masked", "full"):
            raise InvalidService("reveal must be never, masked or full")
        return Service(
            name=validate_name(name),
            auth=build_method(
                str(table.get("auth", "bearer")),
                header=table.get("header"),
                template=table.get("template"),
                param=table.get("param"),
                extra_headers={str(k): str(v) for k, v in dict(table.get("extra_headers", {})).items()},
                **{key: table[key] for key in METHOD_OPTIONS if key in table},
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
@click.option("--with-secrets", is_flag=True, help="Also the secrets, encrypted (CLAVIS_EXPORT_PASSPHRASE).")
def export_services(output: Path | None, as_json: bool, with_secrets: bool = False) -> None:
    """Write the service definitions as TOML, without any secret (for backup or another machine).
    A secret kept elsewhere is written as its reference (``secret_refs``), which is not secret.
    The agents travel as ``[agents.NAME]`` (routing choices only, never a proxy token)."""
    with open_runtime() as runtime:
        services = runtime.vault.list_services()
        refs = {s.name: {f: r for f, r in where(runtime.vault, s).items() if "://" in r} for s in services}
        extras = {s.name: extras_of(runtime.vault, s.name) for s in services}
        tables: dict[str, Any] = {"services": {
            s.name: {**definition(s), **({"secret_refs": refs[s.name]} if refs[s.name] else {}), **extras[s.name]}
            for s in services}}  # fmt: skip
        agents = agents_table(runtime.vault)
        if agents:
            tables["agents"] = agents  # names and routing choices, never a token
        # sealed last, bound to every table above: an edited definition no longer opens
        sealed = export_sealed(runtime, services, tables) if with_secrets else None
    if sealed is not None:
        tables["secrets"] = sealed
    if as_json:
        text = json.dumps(tables, indent=2) + "\n"
    else:
        what = "secrets encrypted" if sealed is not None else "no secrets"
        text = f"# clavis-mcp services ({what}): clavis-mcp import FILE\n" + tomli_w.dumps(tables)
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
    non-alphanumerics as '_'), e.g. CLAVIS_SECRET_MY_OPENAI for my-openai; a method's other
    secret fields from CLAVIS_SECRET_<NAME>__<FIELD>, e.g. CLAVIS_SECRET_AWS__ACCESS_KEY_ID.
    Fields under a table's ``secret_refs`` (FIELD = "REF") are kept by reference instead.
    Each ``[agents.NAME]`` is re-created with a NEW token (`clavis-mcp env --agent NAME`); an
    agent that already exists here is refused, and nothing is imported.
    """
    try:
        document = tomllib.loads(read_bounded_text(path))
        tables = document.get("services", {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidService(f"{path} is not valid TOML: {exc}") from None
    if not isinstance(tables, dict) or not (tables or document.get("agents")):
        raise InvalidService(f"{path} defines no [services.NAME] or [agents.NAME] tables")
    services = [from_definition(name, table) for name, table in tables.items()]
    refs = {name: _table_refs(name, table) for name, table in tables.items()}
    sealed = "secrets" in document
    carried = open_secrets(document["secrets"], export_passphrase(twice=False), document) if sealed else {}
    _refuse_refs_over_sealed(refs, carried)
    if not sealed or secrets_format(document["secrets"]) < 2:
        _show_unbound(path, tables, refs, sealed)
    with open_runtime() as runtime:
        known = {s.name for s in services} | {s.name for s in runtime.vault.list_services()}
        agents = check_agents(document.get("agents"), known)
        refuse_existing_agents(runtime.vault, agents)
        entries = []
        more: dict[str, dict[str, Secret]] = {}  # each service's other secret fields
        for service in services:
            require_oauth_tokens(service.name, tables[service.name], carried.get(service.name, {}))
            if "oauth" in tables[service.name]:
                more[service.name] = {}
                continue  # registered with its tokens below
            var = import_env_var(service.name)
            by_ref = {field: stored_ref(ref) for field, ref in refs[service.name].items()}
            if CREDENTIAL in by_ref:
                entries.append((service, by_ref.pop(CREDENTIAL)))
            elif CREDENTIAL in carried.get(service.name, {}):
                entries.append((service, carried[service.name][CREDENTIAL]))
            elif var in os.environ:
                entries.append((service, validate_secret(os.environ[var])))
            elif sys.stdin.isatty():
                entries.append((service, read_secret(False, None, f"Secret for {service.name}")))
            else:
                raise click.UsageError(f"no secret for {service.name}: set {var} or run the import in a terminal")
            kept = {f: v for f, v in carried.get(service.name, {}).items() if f != CREDENTIAL and f not in by_ref}
            fields = kept or read_fields(service.auth, {}, prefix=var + "__", by_ref=frozenset(by_ref))
            more[service.name] = {**fields, **by_ref}
        runtime.vault.add_services(entries)
        for service in (s for s in services if "oauth" in tables[s.name]):
            import_oauth(runtime.vault, service, tables[service.name], carried[service.name])
            entries.append((service, carried[service.name]["oauth:access_token"]))
        for service, _ in entries:
            store_fields(runtime.vault, service.name, more[service.name])
        for service, _ in entries:
            apply_extras(runtime.vault, service.name, tables[service.name])
            _audit(runtime, service.name, "add", "added", reason=f"imported from {path.name}")
        for name in import_agents(runtime.vault, agents):
            runtime.audit.append(source="cli", action="agent-add", decision="added",
                                 reason=f"agent {name} imported from {path.name}, with a new token")  # fmt: skip
    emit(
        as_json,
        [{**service_view(s), "fingerprint": _shown(s, secret, refs)} for s, secret in entries]
        + [{"agent": name, "new_token_from": f"clavis-mcp env --agent {name}"} for name in agents],
        [f"imported {s.name} ({_shown(s, secret, refs)})" for s, secret in entries]
        + [f"imported agent {name} (new token: clavis-mcp env --agent {name})" for name in agents],
    )


def _refuse_refs_over_sealed(refs: dict[str, dict[str, Any]], carried: dict[str, dict[str, Secret]]) -> None:
    """A ``secret_refs`` entry must never replace a sealed value (it would send a secret of the
    importer's own environment to the file's hosts)."""
    for name, fields in refs.items():
        clash = sorted(set(fields) & set(carried.get(name, {})))
        if clash:
            raise InvalidService(
                f"service {name!r}: secret_refs names {', '.join(clash)}, which the file's sealed secrets "
                "already hold (was the file edited?); nothing was imported"
            )


def _show_unbound(path: Path, tables: dict[str, Any], refs: dict[str, dict[str, Any]], sealed: bool) -> None:
    """What an import whose definitions no passphrase vouches for will trust: each service's
    hosts and references, on stderr, so an edited file is seen before it is used."""
    if sealed:
        click.echo(f"warning: {path.name} is an older export whose definitions are not sealed with its "
                   "secrets; check the hosts below (re-export it to bind them)", err=True)  # fmt: skip
    for name, table in tables.items():
        hosts = ", ".join(str(h) for h in table.get("hosts", [])) or "(none)"
        line = f"{name}: hosts {hosts}"
        if refs[name]:
            line += "; secret_refs " + ", ".join(f"{f}={r}" for f, r in sorted(table["secret_refs"].items()))
        click.echo(line, err=True)


def _table_refs(name: str, table: dict[str, Any]) -> dict[str, Any]:
    """An imported table's ``secret_refs``, each checked as ``add --field-ref`` checks it."""
    given = table.get("secret_refs", {})
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise InvalidService(f'service {name!r}: secret_refs must be a table of FIELD = "REF"')
    try:
        return field_refs(tuple(f"{field}={ref}" for field, ref in given.items()))
    except (ClavisError, click.BadParameter) as exc:
        raise InvalidService(f"service {name!r}: {exc}") from None


def _shown(service: Service, secret: Secret, refs: dict[str, dict[str, Any]]) -> str:
    ref = refs[service.name].get(CREDENTIAL)
    return f"secret at {ref}" if ref is not None else secret.fingerprint


COMMANDS = [add, list_services, show, rotate, edit, remove, export_services, import_services]
