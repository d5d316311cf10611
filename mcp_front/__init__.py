"""The MCP front end: the four tools Claude Desktop (or any MCP client) uses."""

from __future__ import annotations

from .gateway import Gateway
from .server import build_server

__all__ = ["Gateway", "build_server"]
