"""`clavis-mcp budget NAME`: a local cap on a service's requests (`--max-requests N --per 1h`)."""

from __future__ import annotations

import click

from clavis_mcp.vault.limits.budget import Budget, budget_of, parse_period, set_budget

from .runtime import open_runtime


@click.command()
@click.argument("name")
@click.option("--max-requests", type=int, help="Requests allowed per period.")
@click.option("--per", "period", default="1h", show_default=True, help="Period: 30s, 15m, 1h or 1d.")
@click.option("--off", is_flag=True, help="Remove the budget.")
def budget(name: str, max_requests: int | None, period: str, off: bool) -> None:
    """Show or set service NAME's local budget; calls beyond it are refused before they leave."""
    if off and max_requests is not None:
        raise click.UsageError("give either --max-requests or --off")
    with open_runtime() as runtime:
        runtime.vault.get_service(name)
        if off:
            set_budget(runtime.vault, name, None)
            click.echo(f"{name}: no local budget")
            return
        if max_requests is not None:
            set_budget(runtime.vault, name, Budget(max_requests, parse_period(period)))
        current = budget_of(runtime.vault, name)
    click.echo(f"{name}: {current.describe() if current else 'no local budget'}")


COMMANDS = [budget]
