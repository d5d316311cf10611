"""Proxy verbs: the standalone proxy, the environment agents need, the CA, and agent tokens."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import click

from clavis_mcp.vault import InvalidService, parse_host_rule
from clavis_mcp.vault.agents import (
    add_agent,
    agent_token,
    list_agents,
    revoke_agent,
    set_deny_other_hosts,
    use_services,
)
from clavis_mcp.vault.errors import ProxyStartError

from .runtime import Runtime, open_runtime

DEFAULT_AGENT = "default"


def port_taken(port: int) -> bool:
    """Something listens on 127.0.0.1:``port`` (a connect succeeds)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def taken_port_error(port: int) -> ProxyStartError:
    return ProxyStartError(
        f"the proxy could not listen on 127.0.0.1:{port}: the port is already in use (another "
        "`clavis-mcp proxy`?); choose another with --port N, or --port 0 for any free port"
    )


def ensure_agent_token(runtime: Runtime, agent: str | None) -> tuple[str, str]:
    """``(name, token)`` of the named agent, or of the default one, created on first use."""
    name = agent or DEFAULT_AGENT
    if agent is None and name not in {a.name for a in list_agents(runtime.vault)}:
        add_agent(runtime.vault, name)
        runtime.audit.append(source="cli", action="agent-add", decision="added", reason=f"agent {name}")
        click.echo(f"created proxy agent {name!r} (see `clavis-mcp agent list`)", err=True)
    return name, agent_token(runtime.vault, name)


def exports_for(runtime: Runtime, proxy_url: str) -> list[tuple[str, str]]:
    """What an agent's environment needs for ``proxy_url``: NO_PROXY spares the hosts of every service."""
    from clavis_mcp.proxy.agent_env import agent_exports

    hosts = [rule for service in runtime.vault.list_services() for rule in service.hosts]
    return agent_exports(proxy_url, runtime.ca.write_client_bundle(), hosts, os.environ)


def base_url_exports_for(runtime: Runtime, token: str, port: int) -> list[tuple[str, str]]:
    """Base-URL variables of every service whose connector names one, in service-name order."""
    from clavis_mcp.proxy.agent_env import base_url_exports
    from clavis_mcp.vault.connectors import load_catalog

    catalog = load_catalog(runtime.vault.home)
    rows = []
    for service in sorted(runtime.vault.list_services(), key=lambda s: s.name):
        known = catalog.get(service.connector)
        if known is not None and known.base_url_env:
            rows.append((service.name, known.base_url_env, known.base_url_path, known.key_env))
    if not rows:
        click.echo("no service comes from a connector with a base-URL variable (openai, anthropic, github, "
                   "huggingface); use `clavis-mcp env` for HTTPS_PROXY mode", err=True)  # fmt: skip
    return base_url_exports(f"http://127.0.0.1:{port}", token, rows)


@click.command()
@click.option(
    "--port",
    default=8899,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1; 0 binds any free port, which the ready line names.",
)
@click.option(
    "--passthrough",
    "passthrough",
    multiple=True,
    metavar="HOST",
    help="Tunnel HOST[:PORT] or *.DOMAIN untouched (no interception, no credential) when no service owns it. "
    "Repeatable.",
)
def proxy(port: int, passthrough: tuple[str, ...]) -> None:
    """Run the credential-injecting proxy for HTTPS_PROXY agents, in the foreground (Ctrl-C stops it)."""
    import asyncio

    from clavis_mcp.proxy.standalone import serve_until_signalled
    from clavis_mcp.vault.approvals import approval_hold
    from clavis_mcp.vault.proxy_config import ProxyConfig

    from .serve import quiet_logging

    if os.environ.get("CLAVIS_API_URL", "").strip():  # a team client: the team server injects (team_proxy.py)
        from clavis_mcp.vault import clavis_home

        from .team_proxy import serve_team_proxy

        quiet_logging()
        asyncio.run(serve_team_proxy(clavis_home(), port))
        return
    rules = []
    for text in passthrough:
        try:
            rules.append(parse_host_rule(text))
        except ValueError as exc:
            raise InvalidService(f"--passthrough {text!r}: {exc}") from None
    quiet_logging()
    with open_runtime() as runtime:

        def announce(line: str) -> None:
            click.echo(line)
            sys.stdout.flush()

        config = ProxyConfig(
            passthrough=tuple(rules), pass_other_hosts=True, approvals=approval_hold(runtime.vault.home)
        )
        try:
            asyncio.run(
                serve_until_signalled(runtime.vault, runtime.audit, runtime.ca, config, port=port, announce=announce)
            )
        except ProxyStartError:
            if port and port_taken(port):
                raise taken_port_error(port) from None
            raise


@click.command()
@click.option("--agent", "agent", metavar="NAME", help=f"Agent whose token to use (default: {DEFAULT_AGENT!r}).")
@click.option("--shell", type=click.Choice(["bash", "fish", "powershell"]), default="bash", show_default=True)
@click.option("--port", default=8899, show_default=True, type=click.IntRange(1, 65535), help="Port of the proxy.")
@click.option(
    "--base-urls",
    "base_urls",
    is_flag=True,
    help="Print instead each SDK's base-URL and API-key variables (OPENAI_BASE_URL, ...) for base-URL mode: "
    "plain HTTP to the proxy on loopback, no CA to trust.",
)
def env(agent: str | None, shell: str, port: int, base_urls: bool) -> None:
    """Print the exports that send an agent's HTTPS through the proxy: eval "$(clavis-mcp env)".

    To set them up for one command only, starting the proxy if needed: clavis-mcp run -- COMMAND.
    """
    from clavis_mcp.proxy.agent_env import render

    with open_runtime() as runtime:
        name, token = ensure_agent_token(runtime, agent)
        if base_urls:
            exports = base_url_exports_for(runtime, token, port)
        else:
            exports = exports_for(runtime, f"http://{name}:{token}@127.0.0.1:{port}")
    click.echo(render(exports, shell), nl=False)  # type: ignore[arg-type]


@click.group()
def certs() -> None:
    """The local CA that agents trust for intercepted service hosts."""


@certs.command("path")
def certs_path() -> None:
    """Print the path of the CA certificate (PEM)."""
    with open_runtime() as runtime:
        click.echo(str(runtime.ca.ensure().cert_path))


@certs.command("show")
def certs_show() -> None:
    """Print the CA's subject, validity, SHA-256 fingerprint and path."""
    with open_runtime() as runtime:
        ca = runtime.ca.ensure()
        cert = ca.certificate()
    click.echo(f"subject: {cert.subject.rfc4514_string()}")
    click.echo(f"valid: {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}")
    click.echo(f"SHA-256 fingerprint: {ca.fingerprint()}")
    click.echo(f"path: {ca.cert_path}")


@certs.command("export")
@click.argument("target", required=False, type=click.Path(dir_okay=False, path_type=Path))
def certs_export(target: Path | None) -> None:
    """Write the CA certificate (PEM, public) to TARGET, or to standard output."""
    with open_runtime() as runtime:
        pem = runtime.ca.ensure().cert_path.read_bytes()
    if target is None:
        click.echo(pem.decode(), nl=False)
        return
    target.write_bytes(pem)
    click.echo(f"wrote {target}", err=True)


@certs.command("bundle")
def certs_bundle() -> None:
    """(Re)write the bundle of system CAs plus ours that `clavis-mcp env` points agents to; print its path."""
    with open_runtime() as runtime:
        click.echo(str(runtime.ca.write_client_bundle()))


@click.group()
def agent() -> None:
    """Per-agent proxy credentials: the audit log says which agent made each call."""


@agent.command("add")
@click.argument("name")
@click.option(
    "--deny-other-hosts",
    is_flag=True,
    help="Refuse hosts no service owns (default: they are tunnelled untouched, with no credential).",
)
@click.option(
    "--use",
    "uses",
    multiple=True,
    metavar="SERVICE",
    help="Where several services share a host, this agent means SERVICE there. Repeatable.",
)
def agent_add(name: str, deny_other_hosts: bool, uses: tuple[str, ...]) -> None:
    """Create agent NAME and print its proxy token once."""
    with open_runtime() as runtime:
        token = add_agent(runtime.vault, name, deny_other_hosts=deny_other_hosts, uses=uses)
        runtime.audit.append(source="cli", action="agent-add", decision="added", reason=f"agent {name}")
    click.echo(token)
    click.echo(f'agent {name!r} added; its shell setup: eval "$(clavis-mcp env --agent {name})"', err=True)


@agent.command("use")
@click.argument("name")
@click.argument("services", nargs=-1, metavar="SERVICE...")
@click.option("--clear", is_flag=True, help="Forget every binding: shared hosts are refused until one is chosen.")
def agent_use(name: str, services: tuple[str, ...], clear: bool) -> None:
    """Bind agent NAME to SERVICE on the hosts it shares with other services (replacing the
    binding it had there); running proxies apply it from the next request on."""
    if bool(services) == clear:
        raise click.UsageError("name one or more services, or --clear (not both)")
    with open_runtime() as runtime:
        bound = use_services(runtime.vault, name, services)
        now = ", ".join(bound.uses) or "none"
        runtime.audit.append(source="cli", action="agent-use", decision="changed", reason=f"agent {name} uses {now}")
    click.echo(f"agent {name!r} uses: {now}")


@agent.command("other-hosts")
@click.argument("name")
@click.argument("choice", type=click.Choice(["pass", "deny"]))
def agent_other_hosts(name: str, choice: str) -> None:
    """Whether hosts no service owns are tunnelled untouched (pass) or refused (deny) for agent NAME."""
    with open_runtime() as runtime:
        set_deny_other_hosts(runtime.vault, name, choice == "deny")
        runtime.audit.append(
            source="cli", action="agent-other-hosts", decision="changed", reason=f"agent {name}: {choice}"
        )
    click.echo(f"agent {name!r}: hosts no service owns are {'refused' if choice == 'deny' else 'passed through'}")


@agent.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def agent_list(as_json: bool) -> None:
    """List agents (names, creation time and routing choices, never tokens)."""
    with open_runtime() as runtime:
        agents = list_agents(runtime.vault)
    if as_json:
        rows = [
            {"name": a.name, "created_at": a.created_at, "deny_other_hosts": a.deny_other_hosts, "uses": list(a.uses)}
            for a in agents
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not agents:
        click.echo("no agents yet; add one with: clavis-mcp agent add NAME")
    for a in agents:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(a.created_at))
        other = "other hosts refused" if a.deny_other_hosts else "other hosts passed"
        uses = f", uses {', '.join(a.uses)}" if a.uses else ""
        click.echo(f"{a.name:<24} created {created}, {other}{uses}")


@agent.command("revoke")
@click.argument("name")
def agent_revoke(name: str) -> None:
    """Revoke agent NAME: running proxies refuse its token from the next request on."""
    with open_runtime() as runtime:
        revoke_agent(runtime.vault, name)
        runtime.audit.append(source="cli", action="agent-revoke", decision="revoked", reason=f"agent {name}")
    click.echo(f"revoked {name}")


COMMANDS: list[click.Command] = [proxy, env, certs, agent]
