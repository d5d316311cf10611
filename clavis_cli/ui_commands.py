"""`clavis-mcp ui`: the local web page for audit review; `audit report --html`: its overview as a file.

The page opens the vault once (to check the audit chain and read rate limits, as `audit verify`
and `check_credential_status` do) and serves on 127.0.0.1 with a token printed in its URL.
"""

from __future__ import annotations

import webbrowser
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
    from clavis_mcp.ui.server import bind, new_token, server_for
    from clavis_mcp.ui.source import AuditSource

    with open_runtime() as runtime:
        try:
            sock = bind(port)
        except OSError as exc:
            raise click.ClickException(str(exc)) from None
        token = new_token()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}"
        click.echo(f"clavis-mcp ui: open {url}")
        click.echo("(the address holds the page's access token: do not share it; Ctrl-C stops the page)", err=True)
        if not no_browser:
            webbrowser.open(url)
        server_for(AuditSource(clavis_home(), runtime.vault), sock, token).run(sockets=[sock])


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


COMMANDS: list[click.Command] = [ui]
