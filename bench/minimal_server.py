"""The start-up baseline: the smallest useful MCPServer, one tool, over stdio."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server: MCPServer[None] = MCPServer(name="minimal")


@server.tool()
async def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run("stdio")
