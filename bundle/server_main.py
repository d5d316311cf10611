"""Entry point of the MCP bundle: the host runs it in the bundle's own environment (uv, pyproject.toml)."""

from __future__ import annotations

from clavis_mcp.clavis_cli.serve import serve_stdio

if __name__ == "__main__":
    serve_stdio()
