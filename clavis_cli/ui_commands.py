"""`clavis-mcp ui`: the local web page for audit review; `audit report --html`: its overview as a file.

The page opens the vault once (to check the audit chain and read rate limits, as `audit verify`
and `check_credential_status` do) and serves on 127.0.0.1 with a token printed in its URL.
"""

from __future__ import annotations

import json
import math
import signal
import time
import webbrowser
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click

from clavis_mcp.vault import clavis_home
from clavis_mcp.vault.audit.timestamps import parse_when

from .runtime import open_runtime


@click.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1; 0 picks a free one.")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
def ui(port: int, no_browser: bool) -> None:
    """Serve the audit review page on 127.0.0.1; the printed URL carries its access token."""
    from clavis_mcp.ui.approvals import ApprovalDesk
    from clavis_mcp.ui.server import Page, bind, launch_file, new_token, server_for
    from clavis_mcp.ui.source import AuditSource

    with open_runtime() as runtime, ExitStack() as launched:
        try:
            sock = bind(port)
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
        page = Page(sock.getsockname()[1], new_token())
        click.echo(f"clavis-mcp ui: open {page.url}")
        click.echo("(the address holds the page's access token: do not share it; Ctrl-C stops the page)", err=True)
        if not no_browser:
            # Any local user can read a command line: the browser gets a file only we can read.
            webbrowser.open(launched.enter_context(launch_file(page)).as_uri())
        source = AuditSource(clavis_home(), runtime.vault)
        desk = ApprovalDesk(source.home, source.vault, source.vault_lock)
        # uvicorn raises the signal that stopped it again once it is done: SIGTERM then ends the
        # process as Ctrl-C does, through these blocks, so the launch file is removed either way.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            server_for(page, source, desk).run(sockets=[sock])
        finally:
            desk.close()


@click.command("report")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the overview to this file (one self-contained HTML page).")  # fmt: skip
@click.option("--since", default="7d", show_default=True, help="From this time: 30m, 1h, 2d, today, or an ISO date.")
@click.option("--until", help="Before this time (same forms as --since); default: now.")
def report(html_file: Path, since: str, until: str | None) -> None:
    """The overview (timeline, services × agents, refusals, latency, rate limits, chain) as an HTML file."""
    from clavis_mcp.ui.report import write_report
    from clavis_mcp.ui.source import AuditSource

    now = datetime.now().astimezone()
    start = parse_when(since, now)
    end = parse_when(until, now) if until else now
    if end <= start:
        raise click.BadParameter("--until must be later than --since")
    with open_runtime() as runtime:
        write_report(AuditSource(clavis_home(), runtime.vault), start, end, html_file)
    click.echo(f"wrote the audit report to {html_file}")


@click.group("approvals", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per waiting request (kind held) and per live grant (kind grant).")  # fmt: skip
@click.pass_context
def approvals(ctx: click.Context, as_json: bool) -> None:
    """Requests held by the proxy for a person's approval (approve or deny each by its id), and the
    live approve-for-N-minutes grants (end one early with `clavis-mcp approvals revoke-grant ID`)."""
    if ctx.invoked_subcommand is not None:
        return
    from clavis_mcp.vault.approvals import Approvals

    from .audit_commands import _safe  # agent-chosen text: escaped again, whoever wrote the queue

    queue = Approvals(clavis_home())
    try:
        waiting, grants = queue.pending(), queue.grants()
    finally:
        queue.close()
    now = time.time()
    for held in waiting:
        if as_json:
            click.echo(json.dumps({"kind": "held", **asdict(held), "remaining": round(held.deadline - now, 1)},
                                  sort_keys=True))  # fmt: skip
        else:
            body = f"  body ({_safe(held.size)}): {_safe(held.preview)}" if held.preview else ""
            click.echo(f"{_safe(held.id)}  {_safe(held.agent)} -> {_safe(held.service)}  {_safe(held.method)} "
                       f"{_safe(held.url)}  ({held.deadline - now:.0f} s left){body}")  # fmt: skip
    for grant in grants:
        left = math.ceil((grant.until - now) / 60)
        if as_json:
            click.echo(json.dumps({"kind": "grant", **asdict(grant), "minutes_left": left}, sort_keys=True))
        else:
            click.echo(f"grant {_safe(grant.held_id)}  {_safe(grant.agent)} -> {_safe(grant.service)}  "
                       f"{_safe(grant.method)} on any path of {_safe(grant.host)}  ({left} min left, "
                       f"approved by {_safe(grant.granted_by)})")  # fmt: skip
    if not waiting and not as_json:
        click.echo("no request is waiting for approval", err=True)


@click.command("approve")
@click.argument("held_id", metavar="ID")
@click.option("--minutes", type=click.IntRange(0, 24 * 60), default=0, show_default=True,
              help="Also let like requests (same agent, service, method, host; any path) pass that long.")  # fmt: skip
def approve(held_id: str, minutes: int) -> None:
    """Let a held request go out (see `clavis-mcp approvals`); the decision is audited as the CLI's."""
    _decide(held_id, approve=True, minutes=minutes)


@click.command("deny")
@click.argument("held_id", metavar="ID")
def deny(held_id: str) -> None:
    """Refuse a held request: the agent is told a person denied it, and nothing is sent."""
    _decide(held_id, approve=False, minutes=0)


def _decide(held_id: str, *, approve: bool, minutes: int) -> None:
    from clavis_mcp.vault.approvals import Approvals, decide_and_record

    from .audit_commands import _safe

    with open_runtime() as runtime:
        queue = Approvals(runtime.vault.store)
        held = decide_and_record(queue, runtime.audit, held_id, approve=approve, by="cli", minutes=minutes)
    how = f" (and like requests, on any path of {_safe(held.host)}, for {minutes} min)" if minutes else ""
    click.echo(f"{held.state} {held.id}: {_safe(held.method)} {_safe(held.url)} from {_safe(held.agent)}{how}")


@approvals.command("revoke-grant")
@click.argument("held_id", metavar="ID")
def revoke_grant(held_id: str) -> None:
    """End an approve-for-N-minutes grant now (ID: the request it came from, as `clavis-mcp approvals`
    lists it): like requests wait for a person again. Audited as the CLI's."""
    from clavis_mcp.vault.approvals import Approvals, revoke_and_record

    from .audit_commands import _safe

    with open_runtime() as runtime:
        grant = revoke_and_record(Approvals(runtime.vault.store), runtime.audit, held_id, by="cli")
    click.echo(f"revoked grant {_safe(held_id)}: {_safe(grant.agent)} -> {_safe(grant.service)} {_safe(grant.method)} "
               f"on {_safe(grant.host)} waits for a person again")  # fmt: skip


@click.command("policy")
@click.argument("service")
@click.option("--approvals", "mode", type=click.Choice(["none", "writes", "all", "inherit"]),
              help="Which requests wait for a person: none, writes (non-safe methods) or all; "
                   "inherit removes the setting (an agent's: the service's applies).")  # fmt: skip
@click.option("--agent", help="Set it for this agent only (as named by `clavis-mcp agent`; the MCP server is 'mcp').")
def policy(service: str, mode: str | None, agent: str | None) -> None:
    """Show or set which of SERVICE's requests wait for a person's approval, for every agent or one."""
    from clavis_mcp.vault.policy import load_policy, set_approvals

    if agent is not None and mode is None:
        raise click.UsageError("--agent needs --approvals MODE")
    with open_runtime() as runtime:
        runtime.vault.get_service(service)  # an unknown service: one line naming the known ones
        if mode is None:
            current = load_policy(runtime.vault, service)
        else:
            current = set_approvals(runtime.vault, service, None if mode == "inherit" else mode, agent)
    every = current.approvals or ("writes" if current.confirm_writes else "none")
    source = "" if current.approvals is not None else " (from confirm writes)"
    click.echo(f"{service}: approvals: {every} for every agent{source}")
    for name, agent_mode in sorted(current.agent_approvals.items()):
        click.echo(f"{service}: approvals: {agent_mode} for agent {name}")


COMMANDS: list[click.Command] = [ui, approvals, approve, deny, policy]
