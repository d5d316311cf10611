"""Audit log verbs: review (a table or JSON Lines, with filters and ``--follow``), verify, stats,
acknowledge-loss, repair.

Review reads the log through its index (``vault.audit_index``) and needs no vault key, so it
works while the MCP server and the proxy keep appending. ``verify`` opens the vault, which
holds the MAC key and the high-water mark. ``acknowledge-loss`` is the one way to resume after
records were lost from the end of the log: until it runs, appends (and so requests) are refused.
``repair`` is the one way to resume after both slots of the checkpoint were damaged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypedDict, Unpack

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clavis_mcp.vault import VaultNotFound, clavis_home
from clavis_mcp.vault.approvals import printable
from clavis_mcp.vault.audit.display import request_text
from clavis_mcp.vault.audit.files import LogFiles, lines_from
from clavis_mcp.vault.audit.filters import AuditFilter, parse_status, record_time
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import AUDIT_FILE
from clavis_mcp.vault.audit.timestamps import parse_when

from .runtime import open_runtime
from .ui_commands import report

FOLLOW_POLL_SECONDS = 0.25
WIDE_TABLE = 130  # terminal columns from which the table shows duration, redactions and id too
_DECISION_STYLE = {"injected": "green", "passed": "cyan", "refused": "red", "error": "magenta"}


class FilterOptions(TypedDict):
    """The options :func:`_filter_options` adds, as click passes them (None when not given)."""

    service: str | None
    agent: str | None
    since: str | None
    until: str | None
    decision: str | None
    status: str | None
    host: str | None


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--service", help="Only this service."),
        click.option("--agent", help="Only this source: mcp, cli, or a proxy agent's name."),
        click.option("--since", help="From this time: 30m, 1h, 2d, today, yesterday, or an ISO date/time."),
        click.option("--until", help="Before this time (same forms as --since)."),
        click.option("--decision", help="Only this decision: injected, passed, refused, error, revealed, ..."),
        click.option("--status", help="Only this HTTP status (404) or class (4xx)."),
        click.option("--host", help="Only requests to this host."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_filter(
    *,
    service: str | None,
    agent: str | None,
    since: str | None,
    until: str | None,
    decision: str | None,
    status: str | None,
    host: str | None,
    now: datetime | None = None,
) -> AuditFilter:
    now = now or datetime.now().astimezone()
    return AuditFilter(
        service=service,
        agent=agent,
        since=parse_when(since, now) if since else None,
        until=parse_when(until, now) if until else None,
        decision=decision,
        status=parse_status(status) if status else None,
        host=host,
    )


def _open_index() -> AuditIndex:
    home = clavis_home()
    if not home.is_dir():
        raise VaultNotFound(f"no clavis-mcp home at {home}; create one with: clavis-mcp init")
    return AuditIndex(LogFiles(home / AUDIT_FILE))


@click.group("audit", invoke_without_command=True)
@_filter_options
@click.option("-n", "--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show the newest N matching records; 0 shows all.")  # fmt: skip
@click.option("-f", "--follow", is_flag=True, help="Keep printing matching records as they are written.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one record per line (for jq).")
@click.pass_context
def audit(ctx: click.Context, limit: int, follow: bool, as_json: bool, **filters: Unpack[FilterOptions]) -> None:
    """Review the audit log: recent records, newest last. See also `audit verify` and `audit stats`."""
    if ctx.invoked_subcommand is not None:
        return
    where = build_filter(**filters)
    index = _open_index()
    try:
        position = index.refresh()
        total = index.count(where)
        records = list(index.read(index.select(where, limit or None)))
    finally:
        index.close()
    if as_json:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True))
    elif records:
        console = _console()
        console.print(_table(records, console.width))
    if not as_json and total > len(records):
        click.echo(f"showing the newest {len(records)} of {total} matching records; --limit 0 shows all", err=True)
    elif not records and not follow:
        click.echo("no matching audit records", err=True)
    if follow:
        _follow(index.files, position, where, as_json)


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Check every record's MAC, the chain between them and the vault's checkpoint.

    Prints OK with the count, or where the first broken record is; exit code 1 if broken.
    """
    with open_runtime() as runtime:
        report = runtime.audit.verify()
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "count": report.count, "files": report.files,
                               "problem": report.problem, "location": report.location,
                               "losses": [list(loss) for loss in report.losses], "repairs": report.repairs,
                               "reanchored": list(report.reanchored), "torn_tail": report.torn_tail}))  # fmt: skip
    else:
        click.echo(report.summary())
    if not report.ok:
        ctx.exit(1)


@audit.command("acknowledge-loss")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def acknowledge_loss(yes: bool) -> None:
    """Record that records were lost from the end of the log, so appends (and requests) resume.

    When the log, or its checkpoint in audit.jsonl.lock, ends below what the vault or the
    checkpoint says existed, clavis-mcp refuses to append, and so refuses every request, rather
    than start a chain over the lost one. This writes the loss into the chain as a record of its
    own (decision "lost"); `audit verify` then reports the gap as acknowledged, every time.
    """
    with open_runtime() as runtime:
        loss = runtime.audit.pending_loss()
        if loss is None:
            click.echo("nothing to acknowledge: the log ends where the vault and the checkpoint say it does")
            return
        click.echo(f"{loss.describe()} are gone from the end of the log ({runtime.audit.path}).")
        click.echo(runtime.audit.verify().summary())
        if not yes:
            click.confirm("Record their loss in the log and resume appending?", abort=True)
        record = runtime.audit.acknowledge_loss(source="cli")
    if record is None:
        click.echo("nothing to acknowledge any more: another process already has")
        return
    click.echo(f"recorded the loss of records {record['lost_from']}-{record['seq'] - 1} as record {record['seq']} "
               f"(id {record['id']}); `clavis-mcp audit verify` reports it from now on")  # fmt: skip


@audit.command("repair")
@click.option("--yes", is_flag=True, help="Confirm the repair (required: nothing is changed without it).")
@click.pass_context
def repair(ctx: click.Context, yes: bool) -> None:
    """Re-anchor the checkpoint when both of its slots (in audit.jsonl.lock) are damaged.

    Until then every append, and so every request, is refused. Inspect the log first (`audit`,
    `audit verify`): the repair vouches for the log as it is now, re-anchoring the checkpoint at
    its last genuine record, and writes a record of its own (action "repair") that `audit
    verify` reports ever after. It refuses a log whose records do not verify.
    """
    with open_runtime() as runtime:
        report = runtime.audit.verify()
        click.echo(report.summary())
        if not runtime.audit.checkpoint_damaged():
            click.echo("nothing to repair: the checkpoint opens (`audit verify` says what else is wrong, if anything)")
            return
        if not yes:
            click.echo("error: nothing was changed; after inspecting the log, run `clavis-mcp audit repair --yes`",
                       err=True)  # fmt: skip
            ctx.exit(1)
        record = runtime.audit.repair_checkpoint(source="cli")
    if record is None:
        click.echo("nothing to repair any more: another process already has")
        return
    click.echo(f"re-anchored the checkpoint at record {record['reanchored']}; recorded as record {record['seq']} "
               f"(id {record['id']}); `clavis-mcp audit verify` reports it from now on")  # fmt: skip


@audit.command("stats")
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="The summary as one JSON object.")
def stats(as_json: bool, **filters: Unpack[FilterOptions]) -> None:
    """Calls per service, agent, status and decision over a period (all filters apply)."""
    where = build_filter(**filters)
    index = _open_index()
    try:
        index.refresh()
        total = index.count(where)
        first, last = index.span(where)
        counts = index.stats(where)
    finally:
        index.close()
    span = [_iso(first), _iso(last)]
    titles = {"service": "service", "source": "agent", "status": "status", "decision": "decision"}
    if as_json:
        summary: dict[str, Any] = {"total": total, "first": span[0], "last": span[1]}
        for column, title in titles.items():
            summary[f"by_{title}"] = {_label(value): n for value, n in counts[column]}
        click.echo(json.dumps(summary))
        return
    console = _console()
    console.print(Text(f"{total} records" + (f" from {_local(first)} to {_local(last)}" if total else "")))
    for column, title in titles.items():
        table = Table(title=f"by {title}", title_justify="left", show_edge=False)
        table.add_column(title)
        table.add_column("records", justify="right")
        for value, n in counts[column]:
            table.add_row(Text(_label(value)), str(n))
        console.print(table)


audit.add_command(report)
COMMANDS: list[click.Command] = [audit]


def _follow(files: LogFiles, position: tuple[int, int], where: AuditFilter, as_json: bool) -> None:
    """Print matching records as they are appended, across rotations, until interrupted."""
    number, offset = position
    try:
        while True:
            final = files.live_number() > number  # known before reading: a rotated file no longer grows
            handle = files.open(number)
            if handle is not None:
                with handle:
                    for start, line in lines_from(handle, offset):
                        offset = start + len(line)
                        _print_followed(line, where, as_json)
            if final:
                number, offset = number + 1, 0
            else:
                time.sleep(FOLLOW_POLL_SECONDS)
    except KeyboardInterrupt:
        return


def _print_followed(line: bytes, where: AuditFilter, as_json: bool) -> None:
    try:
        record = json.loads(line)
    except ValueError:
        return  # not a record; `audit verify` reports it
    if not isinstance(record, dict) or not where.matches(record):
        return
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    else:
        click.echo("  ".join(cell for cell in _cells(record) if cell))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _table(records: Iterable[dict[str, Any]], width: int) -> Table:
    """All columns on a wide terminal; on a narrow one the timing columns go, the rest fold."""
    wide = width >= WIDE_TABLE
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    shown = []
    for index, (title, justify, no_wrap, narrow) in enumerate((
        ("time", "left", True, True), ("agent", "left", False, True), ("service", "left", False, True),
        ("request", "left", False, True), ("status", "right", True, True), ("decision", "left", True, True),
        ("reason", "left", False, True), ("ms", "right", True, False), ("red.", "right", True, False),
        ("id", "left", True, False),
    )):  # fmt: skip
        if wide or narrow:
            table.add_column(title, justify=justify, no_wrap=no_wrap, overflow="fold")  # type: ignore[arg-type]
            shown.append(index)
    for record in records:
        cells = [Text(cell) for cell in _cells(record)]
        cells[5].stylize(_DECISION_STYLE.get(str(record.get("decision")), ""))
        table.add_row(*(cells[i] for i in shown))
    return table


def _cells(record: dict[str, Any]) -> list[str]:
    """One record as display strings, with control characters escaped (fields came from agents)."""
    moment = record_time(record)
    request = request_text(record)
    values = [
        moment.astimezone().strftime("%m-%d %H:%M:%S") if moment else "?",
        record.get("source"),
        record.get("service"),
        request,
        record.get("status"),
        record.get("decision"),
        record.get("reason"),
        record.get("duration_ms"),
        record.get("redactions"),
        record.get("id"),
    ]
    return [_safe(value) for value in values]


def _safe(value: object) -> str:
    """A record's text as the terminal shows it, nothing it runs: control, bidi/format and line-separator
    characters escaped (a U+202E in an agent's path would otherwise draw the rest reversed)."""
    if value is None:
        return ""
    return printable(str(value))


def _label(value: object) -> str:
    return "(none)" if value is None else _safe(value)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds") if epoch is not None else None


def _local(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M") if epoch is not None else "?"
