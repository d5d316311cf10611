"""Running the MCP server over stdio, the way Claude Desktop starts `clavis-mcp`."""

from __future__ import annotations

import logging
import sys

from vault import ClavisError

from .runtime import open_runtime


def quiet_logging() -> None:
    """stdout carries JSON-RPC only: warnings and errors go to stderr, chatty loggers are capped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("clavis-mcp %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("mitmproxy", "httpx", "httpcore", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def serve_stdio() -> None:
    from mcp_front import Gateway, build_server

    quiet_logging()
    try:
        with open_runtime() as runtime:
            gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
            build_server(gateway).run("stdio")
    except ClavisError as exc:
        print(f"clavis-mcp: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
