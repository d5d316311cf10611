"""The `clavis-mcp` command's entry point.

No arguments is Claude Desktop starting the MCP server over stdio: that path loads neither
click nor the verbs nor the package metadata, so the handshake is answered as quickly as a
bare MCP server's (bench/notes.md). Anything else is the CLI in :mod:`clavis_cli.main`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) == 1:
        from .serve import serve_stdio

        serve_stdio()
    else:
        from .main import main as cli

        cli()
