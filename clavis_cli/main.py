"""`clavis-mcp`: with no arguments, the MCP server over stdio (what Claude Desktop runs);
with a verb, vault management, the standalone proxy, installation and audit review.

Each family of verbs lives in its own module, imported only when one of its verbs runs. The
console script enters through :mod:`clavis_cli.entry`, which serves MCP without loading this
module at all when there are no arguments (Claude Desktop). Errors from the vault are printed
as one line that says what to do, with exit code 1.
"""

from __future__ import annotations

import importlib

import click

from clavis_mcp.vault import ClavisError

from .serve import serve_stdio

# Which module defines each verb; tests/cli pins this against each module's COMMANDS.
VERBS: dict[str, tuple[str, ...]] = {
    "vault_commands": ("init", "rekey", "connectors", "add", "list", "show", "rotate", "edit", "remove", "export",
                       "import"),
    "proxy_commands": ("proxy", "env", "certs", "agent"),
    "mcp_commands": ("install", "doctor", "serve", "mcp-settings"),
    "audit_commands": ("audit",),
    "oauth_commands": ("oauth",),
    "budget_commands": ("budget",),
    "team_commands": ("team",),
}  # fmt: skip


class ClavisGroup(click.Group):
    """Verbs loaded on demand; our errors printed as a single actionable line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for names in VERBS.values() for name in names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        for module_name, names in VERBS.items():
            if name in names:
                module = importlib.import_module(f"{__package__}.{module_name}")
                commands: list[click.Command] = module.COMMANDS
                return next(command for command in commands if command.name == name)
        return None

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ClavisError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=ClavisGroup, invoke_without_command=True)
@click.version_option(package_name="clavis-mcp", prog_name="clavis-mcp")  # looked up only for --version
@click.pass_context
def main(ctx: click.Context) -> None:
    """Credential vault, injecting proxy and MCP server. Without a command: MCP over stdio."""
    if ctx.invoked_subcommand is None:
        serve_stdio()
