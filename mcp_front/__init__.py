"""The MCP front end: the four tools Claude Desktop (or any MCP client) uses.

``Gateway`` and ``build_server`` are loaded on first use (PEP 562): importing one module of the
package (``mcp_front.stdio``, ``mcp_front.unavailable``) does not load the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gateway import Gateway
    from .server import build_server

# The package's version, as pyproject.toml has it (a test pins the two together): serverInfo
# reports it, and asking importlib.metadata costs ~7 ms of the MCP server's start-up.
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        from .gateway import Gateway

        return Gateway
    if name == "build_server":
        from .server import build_server

        return build_server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Gateway", "__version__", "build_server"]
