"""What the MCP server over stdio loads before it can answer ``initialize``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from clavis_mcp.vault import Vault

# Loaded when a tool is first listed or called, or by the first call: never before the handshake.
AFTER_THE_HANDSHAKE = ("clavis_mcp.mcp_front.tool_specs", "clavis_mcp.mcp_front.tools",
                       "clavis_mcp.mcp_front.confirm", "clavis_mcp.mcp_front.credentials",
                       "clavis_mcp.mcp_front.models", "clavis_mcp.vault.oauth", "clavis_mcp.proxy", "mitmproxy",
                       "httpx")  # fmt: skip
BUILT = """
import sys
from clavis_mcp.clavis_cli.serve import mcp_server
with mcp_server() as server:
    print(server.title)
    print(*sorted(sys.modules))
"""


def built() -> tuple[str, set[str]]:
    """The title of the server ``clavis-mcp`` would serve, and the modules loaded once it is built."""
    out = subprocess.run([sys.executable, "-c", BUILT], capture_output=True, text=True, timeout=60, check=True)
    title, modules = out.stdout.splitlines()
    return title, set(modules.split())


def heavy(loaded: set[str]) -> set[str]:
    return {
        module for module in loaded for name in AFTER_THE_HANDSHAKE if module == name or module.startswith(f"{name}.")
    }


def test_the_server_is_built_without_its_tools_the_proxy_or_httpx(vault: Vault) -> None:
    vault.close()
    title, loaded = built()
    assert title == "clavis-mcp credential vault"
    assert heavy(loaded) == set()


def test_the_server_that_explains_a_missing_vault_is_built_without_its_tools(home: Path) -> None:
    title, loaded = built()
    assert title == "clavis-mcp credential vault (unavailable)"
    assert heavy(loaded) == set()
