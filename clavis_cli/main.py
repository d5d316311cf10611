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
    "login_commands": ("login", "logout"),
    "ui_commands": ("ui", "approvals", "approve", "deny", "policy"),
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The verbs and their summaries, read from source (verb_summaries): `--help` imports no verb module."""
        from .verb_summaries import summaries

        rows = []
        for module_name, names in VERBS.items():
            found = summaries(__package__, module_name)
            for name in names:
                if name in found:
                    rows.append((name, found[name]))
                elif (command := self.get_command(ctx, name)) is not None and not command.hidden:
                    rows.append((name, command.short_help or command.help or ""))
        if rows:
            rows.sort()
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                # A bare Command shortens the text exactly as the verb's own would (first sentence, limit).
                formatter.write_dl(
                    [(name, click.Command(name, help=text).get_short_help_str(limit)) for name, text in rows]
                )

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # Imported here: `--version` and `--help` should not load the vault package.
            import sqlite3

            from clavis_mcp.vault.errors import ClavisError

            if isinstance(exc, OSError | sqlite3.Error):  # the disk, the folder or a busy vault
                from .runtime import explain_failure

                click.echo(f"error: {explain_failure(exc)}", err=True)
                ctx.exit(1)
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
