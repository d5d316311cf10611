"""`clavis-mcp`: with no arguments, the MCP server over stdio (what Claude Desktop runs);
with a verb, vault management, the standalone proxy, installation and audit review.

Each family of verbs lives in its own module and is attached here. Errors from the vault are
printed as one line that says what to do, with exit code 1.
"""

from __future__ import annotations

from importlib.metadata import version

import click

from vault import ClavisError

from . import audit_commands, budget_commands, mcp_commands, oauth_commands, proxy_commands, vault_commands
from .serve import serve_stdio


class ClavisGroup(click.Group):
    """Print our errors as a single actionable line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ClavisError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=ClavisGroup, invoke_without_command=True)
@click.version_option(version("clavis-mcp"), prog_name="clavis-mcp")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Credential vault, injecting proxy and MCP server. Without a command: MCP over stdio."""
    if ctx.invoked_subcommand is None:
        serve_stdio()


for module in (vault_commands, proxy_commands, mcp_commands, audit_commands, oauth_commands, budget_commands):
    for command in module.COMMANDS:
        main.add_command(command)
