"""The MCP front end: the four tools Claude Desktop (or any MCP client) uses."""

from __future__ import annotations

# The package's version, as pyproject.toml has it (a test pins the two together): serverInfo
# reports it, and asking importlib.metadata costs ~7 ms of the MCP server's start-up.
__version__ = "0.1.0"

from .gateway import Gateway
from .server import build_server

__all__ = ["Gateway", "__version__", "build_server"]
