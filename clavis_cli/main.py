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

# Which module defines each verb; tests/cli pins this against each module's COMMANDS.
VERBS: dict[str, tuple[str, ...]] = {
    "vault_commands": ("init", "rekey", "connectors", "add", "list", "show", "rotate", "edit", "remove", "export",
                       "import"),
    "proxy_commands": ("proxy", "env", "certs", "agent"),
    "run_commands": ("run",),
    "mcp_commands": ("install", "doctor", "serve", "mcp-settings"),
    "audit_commands": ("audit",),
    "oauth_commands": ("oauth",),
    "budget_commands": ("budget",),
    "team_commands": ("team",),
    "ui_commands": ("ui", "approvals", "approve", "deny"),
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
        except Exception as exc:
            # Imported here: `--version` and `--help` should not load the vault package.
            from clavis_mcp.vault.errors import ClavisError

            if not isinstance(exc, ClavisError):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """The bare version number on one line, for scripts (issue 15); read from the installed metadata."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    click.echo(version("clavis-mcp"))
    ctx.exit()


@click.group(cls=ClavisGroup, invoke_without_command=True)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the version number and exit.")  # fmt: skip
@click.pass_context
def main(ctx: click.Context) -> None:
    """Credential vault, injecting proxy and MCP server. Without a command: MCP over stdio."""
    if ctx.invoked_subcommand is None:
        from .serve import serve_stdio

        serve_stdio()
