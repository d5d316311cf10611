"""Running the MCP server, the way Claude Desktop starts `clavis-mcp` (stdio) or over HTTP.

If the vault cannot be opened (missing, locked, damaged) the server still starts, and every
tool answers with the reason and the fix: Claude Desktop would only show "server
disconnected" for a process that exits. The reason also goes to stderr, which Claude
Desktop keeps in its MCP log. stdout carries JSON-RPC only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from clavis_mcp.vault import ClavisError, VaultLocked, clavis_home

from .runtime import open_runtime

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer


def _not_mitmproxy_listen_hint(record: logging.LogRecord) -> bool:
    """mitmproxy's own words for a busy port suggest its `--mode regular@PORT`, not our option:
    dropped, since the caller raises ProxyStartError and the CLI says which of ours to use (as is
    the empty error it logs while stopping the server that never listened)."""
    message = record.getMessage()
    return not (record.name == "mitmproxy.addons.proxyserver" and ("listen" in message or not message.strip()))


def quiet_logging() -> None:
    """stdout carries JSON-RPC only: warnings and errors go to stderr, chatty loggers are capped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("clavis-mcp %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(_not_mitmproxy_listen_hint)
    root = logging.getLogger()
    root.addHandler(handler)
    for name in ("mitmproxy", "httpx", "httpcore", "hpack", "h2", "mcp", "uvicorn", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _sdk_logging_setup_skipped(level: str = "INFO") -> None:
    """In place of the SDK's ``configure_logging``, which every ``MCPServer()`` calls: it imports
    rich (15 ms of start-up, before ``initialize`` is answered) to build a handler that
    ``logging.basicConfig`` then drops, since :func:`quiet_logging` gave the root logger one."""


@contextmanager
def mcp_server() -> Iterator[MCPServer[Any]]:
    """The real server over the vault, or, if the vault cannot be opened, the one that explains why."""
    from mcp.server.mcpserver import server as sdk_server

    from clavis_mcp.mcp_front import Gateway, build_server
    from clavis_mcp.mcp_front.calls import CallLimits
    from clavis_mcp.mcp_front.unavailable import build_unavailable_server
    from clavis_mcp.vault.approvals import approval_hold
    from clavis_mcp.vault.proxy_config import ProxyConfig

    sdk_server.configure_logging = _sdk_logging_setup_skipped  # type: ignore[attr-defined]  # its name there
    if os.environ.get("CLAVIS_API_URL", "").strip():  # a team client: no local vault is opened or created
        from clavis_mcp.mcp_front.team_server import team_server_from_env

        yield team_server_from_env()
        return
    with ExitStack() as stack:
        try:
            limits = CallLimits.from_env()
            runtime = stack.enter_context(open_runtime())
            hold = approval_hold(runtime.vault.home)  # held when the client cannot ask (elicitation)
        except ClavisError as exc:
            problem = _for_a_client(exc)
            print(f"clavis-mcp: {problem}", file=sys.stderr)
            yield build_unavailable_server(problem)
            return
        config = ProxyConfig(approvals=hold)
        yield build_server(Gateway(runtime.vault, runtime.audit, runtime.ca, config=config, limits=limits))


def _for_a_client(exc: ClavisError) -> ClavisError:
    """A passphrase vault locked under an MCP client: the client cannot type, so say what to run, and where."""
    from clavis_mcp.vault.keys.passphrase import ENV_VAR
    from clavis_mcp.vault.store import read_key_store

    if not isinstance(exc, VaultLocked) or sys.stdin.isatty():
        return exc
    try:
        if read_key_store(clavis_home()).kind != "passphrase":
            return exc
    except ClavisError:
        return exc
    return VaultLocked(
        "the vault is protected by a passphrase, and an MCP client such as Claude Desktop cannot type one. "
        "In a terminal, run `clavis-mcp rekey --key-store keychain` so the vault opens without one "
        f"(or add {ENV_VAR} to the client's entry: `clavis-mcp install claude-desktop --env {ENV_VAR}=...`)"
    )


TERMINAL_NOTICE = (
    "clavis-mcp: this is the MCP server; it speaks MCP (JSON-RPC) on standard input and output, for an MCP "
    "client such as Claude Desktop to start. Set one up with `clavis-mcp install claude-desktop`; "
    "`clavis-mcp --help` lists the commands for a terminal. Waiting for MCP messages on stdin (Ctrl-C quits)."
)


def serve_stdio() -> None:
    if sys.stdin.isatty():  # a person, not a client: otherwise it would wait in silence
        print(TERMINAL_NOTICE, file=sys.stderr, flush=True)
    quiet_logging()
    from clavis_mcp.mcp_front.stdio import run_stdio

    with mcp_server() as server:
        run_stdio(server)  # answers every line; SIGTERM/SIGINT finish or record what is in flight
