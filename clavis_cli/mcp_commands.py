"""MCP client verbs: install into Claude Desktop / Claude Code, doctor, serve (stdio or HTTP)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from clavis_mcp.vault import ClavisError, clavis_home
from clavis_mcp.vault.errors import ConfigError

from .client_config import (
    SERVER_NAME,
    claude_desktop_config_path,
    fragile_reason,
    install_entry,
    installed_executable,
    parse_env_pairs,
    server_entry,
)
from .runtime import ask_passphrase

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Claude Desktop's config file (default: the usual place on this OS).",
)
COMMAND_OPTION = click.option(
    "--command",
    "command",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The clavis-mcp program the client runs (default: the one installed outside any source checkout).",
)
ENV_OPTION = click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Add or change an environment variable of the entry (repeatable); variables already there are kept.",
)


def _entry(command: Path | None = None, env_pairs: tuple[str, ...] = ()) -> dict[str, object]:
    extra = parse_env_pairs(env_pairs)
    if command is None:
        executable = installed_executable()
    else:
        executable = command.absolute()
        if not executable.is_file() or not os.access(executable, os.X_OK):
            raise ConfigError(f"--command {command}: not an executable file")
        if (reason := fragile_reason(executable)) is not None:
            click.echo(f"warning: {reason}; moving or cleaning it breaks the client (see docs/install.md)", err=True)
    entry = server_entry(executable, clavis_home().absolute())
    entry["env"] = {**entry["env"], **extra}
    return entry


@click.group(invoke_without_command=True)
@click.option("--print", "print_only", is_flag=True, help="Print the generic mcpServers JSON for any MCP client.")
@COMMAND_OPTION
@click.pass_context
def install(ctx: click.Context, print_only: bool, command: Path | None) -> None:
    """Add clavis-mcp to an MCP client's configuration (or print what to add)."""
    if ctx.invoked_subcommand is not None:
        return
    if not print_only:
        click.echo(ctx.get_help())
        return
    click.echo(json.dumps({"mcpServers": {SERVER_NAME: _entry(command)}}, indent=2))


@install.command("claude-desktop")
@CONFIG_OPTION
@click.option("--print", "print_only", is_flag=True, help="Print the entry instead of writing it.")
@COMMAND_OPTION
@ENV_OPTION
@click.option(
    "--team", "team_url", metavar="URL", help="Use this team server (after `clavis-mcp login`); no key in the file."
)
def install_claude_desktop(
    config_path: Path | None, print_only: bool, command: Path | None, env_pairs: tuple[str, ...], team_url: str | None
) -> None:
    """Add or update the 'clavis' entry in Claude Desktop's config.

    Other entries, and environment variables you added to ours, are kept; a backup is written.
    """
    if team_url is not None:
        from clavis_mcp.team.admin_client import check_url

        env_pairs = (*env_pairs, f"CLAVIS_API_URL={check_url(team_url)}")
    entry = _entry(command, env_pairs)
    if print_only:
        click.echo(json.dumps({"mcpServers": {SERVER_NAME: entry}}, indent=2))
        return
    path = config_path or claude_desktop_config_path()
    done = install_entry(path, entry)
    if not done.changed:
        click.echo(f"{path} already has this entry; nothing to change")
        return
    click.echo(f"{'created' if done.created else 'updated'} {path}")
    for change in done.changes:
        click.echo(f"  {change}")
    if done.backup:
        click.echo(f"backup of the previous file: {done.backup}")
    click.echo("restart Claude Desktop to load clavis-mcp; check everything with: clavis-mcp doctor")


@install.command("claude-code")
@click.option("--print", "print_only", is_flag=True, help="Print the `claude mcp add` command instead of running it.")
@click.option("--scope", type=click.Choice(["local", "user", "project"]), default="user", show_default=True)
@COMMAND_OPTION
@ENV_OPTION
def install_claude_code(print_only: bool, scope: str, command: Path | None, env_pairs: tuple[str, ...]) -> None:
    """Register clavis-mcp with Claude Code (`claude mcp add`)."""
    entry = _entry(command, env_pairs)
    env = [f"{key}={value}" for key, value in entry["env"].items()]  # type: ignore[attr-defined]
    argv = ["claude", "mcp", "add", SERVER_NAME, "--scope", scope]
    for pair in env:
        argv += ["-e", pair]
    argv += ["--", str(entry["command"])]
    if print_only:
        click.echo(shlex.join(argv))
        return
    claude = shutil.which("claude")
    if claude is None:
        raise ConfigError(f"the `claude` command is not on PATH; install Claude Code, or run: {shlex.join(argv)}")
    result = subprocess.run([claude, *argv[1:]], check=False)
    if result.returncode != 0:
        raise ConfigError(f"`claude mcp add` failed (exit {result.returncode}); see its message above")
    click.echo("registered clavis-mcp with Claude Code; check with: claude mcp list")


@click.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(config_path: Path | None, as_json: bool) -> None:
    """Check everything Claude Desktop needs to use clavis-mcp; each problem comes with its fix."""
    from .doctor import run_checks

    checks = run_checks(clavis_home(), config_path or claude_desktop_config_path(), ask_passphrase)
    if as_json:
        click.echo(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks]))
    else:
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
            if check.fix and not check.ok:
                click.echo(f"      fix: {check.fix}")
        failed = sum(not c.ok for c in checks)
        click.echo("all checks passed" if not failed else f"{failed} problem(s) found")
    if any(not c.ok for c in checks):
        raise SystemExit(1)


@click.command()
@click.option("--http", "over_http", is_flag=True, help="Serve streamable HTTP on 127.0.0.1 instead of stdio.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="HTTP port (0: any).")
def serve(over_http: bool, port: int) -> None:
    """Run the MCP server: stdio (what Claude Desktop runs), or HTTP with a bearer token printed once."""
    from .serve import serve_stdio

    if not over_http:
        serve_stdio()
        return
    _serve_http(port)


def _serve_http(port: int) -> None:
    import anyio

    from clavis_mcp.mcp_front.http_transport import LOOPBACK, PATH, bind_loopback, serve_http

    from .serve import mcp_server, quiet_logging

    quiet_logging()
    try:
        sock = bind_loopback(port)
    except OSError as exc:
        raise ClavisError(str(exc)) from None
    token = secrets.token_urlsafe(32)
    with mcp_server() as server:
        click.echo(f"MCP endpoint: http://{LOOPBACK}:{sock.getsockname()[1]}{PATH}")
        click.echo(f"bearer token (shown once, valid until this server stops): {token}")
        click.echo("clients send it as: Authorization: Bearer <token>")
        sys.stdout.flush()
        anyio.run(serve_http, server, token, sock)


@click.command("mcp-settings")
@click.argument("name")
@click.option(
    "--confirm-writes/--no-confirm-writes",
    default=None,
    help="Ask the user (where the MCP client can) before call_service sends a mutating request.",
)
@click.option("--probe", help="Request for check_credential_status live=true, e.g. 'GET /v1/models'; '' clears it.")
def mcp_settings(name: str, confirm_writes: bool | None, probe: str | None) -> None:
    """Show or change how the MCP tools treat service NAME (write confirmation, live-check probe).

    --[no-]confirm-writes sets the service-wide approval mode (writes or none) that the proxy
    holds requests by, so what is shown is what is in force (see also `clavis-mcp policy`)."""
    from dataclasses import replace

    from clavis_mcp.mcp_front.settings import load_settings, parse_probe, probe_text, save_settings
    from clavis_mcp.vault.policy import set_confirm_writes

    from .runtime import open_runtime

    with open_runtime() as runtime:
        runtime.vault.get_service(name)
        settings = load_settings(runtime.vault, name)
        if probe is not None:
            settings = replace(settings, probe=parse_probe(probe) if probe else None)
            save_settings(runtime.vault, name, settings)
        if confirm_writes is not None:
            settings = set_confirm_writes(runtime.vault, name, confirm_writes)
    mode = settings.service_mode
    agents = "".join(f", agent {agent}: {m}" for agent, m in sorted(settings.agent_approvals.items()))
    click.echo(
        f"{name}: confirm writes: {'no' if mode == 'none' else 'yes'}; approvals: {mode}{agents}; "
        f"probe: {probe_text(settings.probe) if settings.probe else "the connector's, if any"}"
    )


COMMANDS: list[click.Command] = [install, doctor, serve, mcp_settings]
