"""The server clavis-mcp runs when its vault cannot be opened: same four tools, each answering the fix.

Claude Desktop shows a server that exits at start as a bare "server disconnected", with the
reason buried in a log file. A server that starts and answers every tool with what is wrong
and the command that fixes it puts the reason in front of the user (through the model).
Its tools are the real server's specifications (``tool_specs.py``), so a client sees the
same tools whether or not the vault opened. No vault, no proxy: nothing here can reach a
credential.
"""

from __future__ import annotations

from typing import Any, NoReturn

from mcp.server.mcpserver.exceptions import ToolError

from clavis_mcp.vault.errors import ClavisError, VaultLocked

from . import __version__
from .arguments import ClavisServer

INSTRUCTIONS = """\
clavis-mcp could not open its credential vault, so no service can be used yet. Every tool
answers with the reason and the command that fixes it: tell the user, and ask them to restart
this MCP server (or Claude Desktop) after running it."""


def build_unavailable_server(problem: ClavisError) -> ClavisServer[None]:
    """A server whose tools all report ``problem`` (whose message already says what to do).

    While the vault is locked, check_credential_status answers (every state is ``locked``)
    rather than failing: that is the state a client asked about."""
    reason = f"clavis-mcp cannot open its vault: {problem}. Then restart the MCP server (or Claude Desktop)."
    server: ClavisServer[None] = ClavisServer(
        name="clavis-mcp", title="clavis-mcp credential vault (unavailable)", version=__version__,
        instructions=INSTRUCTIONS, log_level="WARNING", add_tools=lambda server: _add_tools(server, problem, reason),
    )  # fmt: skip
    return server


def _add_tools(server: ClavisServer[None], problem: ClavisError, reason: str) -> None:
    """Added when first listed or called (``ClavisServer``), as the real server's are."""
    from .credentials import detail
    from .models import CredentialStatus
    from .tool_specs import TOOLS, check_credential_status

    async def report(**_: Any) -> NoReturn:
        raise ToolError(reason)

    async def locked(service_name: str, **_: Any) -> CredentialStatus:
        return CredentialStatus(service_name=service_name, state="locked", detail=f"{detail('locked', '')}: {reason}")

    for spec in TOOLS:
        if spec is check_credential_status and isinstance(problem, VaultLocked):
            spec.register(server, locked)
        else:
            spec.register(server, report)
