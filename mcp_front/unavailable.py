"""The server clavis-mcp runs when its vault cannot be opened: same four tools, each answering the fix.

Claude Desktop shows a server that exits at start as a bare "server disconnected", with the
reason buried in a log file. A server that starts and answers every tool with what is wrong
and the command that fixes it puts the reason in front of the user (through the model).
No vault, no proxy: nothing here can reach a credential.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from clavis_mcp.vault.errors import ClavisError, VaultLocked

from . import __version__
from .credentials import detail
from .models import CredentialStatus
from .server import METHOD, SERVICE_NAME

INSTRUCTIONS = """\
clavis-mcp could not open its credential vault, so no service can be used yet. Every tool
answers with the reason and the command that fixes it: tell the user, and ask them to restart
this MCP server (or Claude Desktop) after running it."""


def build_unavailable_server(problem: ClavisError) -> MCPServer[None]:
    """A server whose tools all report ``problem`` (whose message already says what to do)."""
    reason = f"clavis-mcp cannot open its vault: {problem}. Then restart the MCP server (or Claude Desktop)."
    locked = isinstance(problem, VaultLocked)
    server: MCPServer[None] = MCPServer(
        name="clavis-mcp", title="clavis-mcp credential vault (unavailable)", version=__version__,
        instructions=INSTRUCTIONS, log_level="WARNING",
    )  # fmt: skip

    @server.tool(title="List services", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def list_services() -> Any:
        """List the services whose credentials this vault holds (the vault is unavailable: says why)."""
        raise ToolError(reason)

    @server.tool(title="Get credentials", annotations=ToolAnnotations(read_only_hint=False, open_world_hint=False))
    async def get_credentials(service_name: SERVICE_NAME) -> Any:
        """Show a service's credential as its policy allows (the vault is unavailable: says why)."""
        raise ToolError(reason)

    @server.tool(title="Check credential status", annotations=ToolAnnotations(read_only_hint=True))
    async def check_credential_status(service_name: SERVICE_NAME, live: bool = False) -> CredentialStatus:
        """Report whether a service's credential is usable; while the vault is locked, every state is 'locked'."""
        if not locked:
            raise ToolError(reason)
        return CredentialStatus(service_name=service_name, state="locked", detail=f"{detail('locked', '')}: {reason}")

    @server.tool(
        title="Call a service",
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True),
    )
    async def call_service(
        service_name: SERVICE_NAME, method: METHOD, url: str, headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None, json: Any = None, data: str | None = None,
    ) -> Any:  # fmt: skip
        """Call an API with a stored credential (the vault is unavailable: says why)."""
        raise ToolError(reason)

    return server
