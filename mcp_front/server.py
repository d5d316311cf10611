"""The MCP server: four tools over the vault and the embedded proxy.

Thin by design: validation and formatting only. Secrets are handled by the proxy at egress;
no tool result or error message carries one (get_credentials under a ``full`` policy is the
single, audited exception). What a client sees of the tools, in the order it lists them, is
declared in ``tool_specs.py``, which the server without a vault shares; their bodies are in
``tools.py``. This module only wires the two to a gateway.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from clavis_mcp.vault.errors import ClavisError

from . import __version__
from .arguments import ClavisServer

if TYPE_CHECKING:
    from .gateway import Gateway

INSTRUCTIONS = """\
clavis-mcp holds API credentials so you never need to see them. To call an API, use
call_service with the service name and a full https:// URL on one of the service's hosts:
the credential is added on the way out and scrubbed from the response. Use list_services to
see what is available and check_credential_status to see whether a credential works and how
much of its rate limit is left. Always prefer call_service over get_credentials:
get_credentials shows only a masked form unless the user has allowed full reveal for that
service, and a revealed key can leak through your context."""


def _tool_errors[**P, R](fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Turn our anticipated errors into tool errors the model can read and act on."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClavisError as exc:
            raise ToolError(str(exc)) from None

    return wrapper


def build_server(gateway: Gateway) -> ClavisServer[Gateway]:
    """The server with its tools bound to ``gateway``; tests pass a gateway over a temporary vault."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[Gateway]) -> AsyncIterator[Gateway]:
        try:
            yield gateway
        finally:
            with anyio.CancelScope(shield=True):  # stopped by a signal: still record what was in flight
                await gateway.aclose()

    server: ClavisServer[Gateway] = ClavisServer(
        name="clavis-mcp",
        title="clavis-mcp credential vault",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
        add_tools=functools.partial(_add_tools, gateway=gateway),
    )
    return server


def _add_tools(server: ClavisServer[Gateway], gateway: Gateway) -> None:
    """The tools bound to ``gateway``, added when first listed or called (``ClavisServer``): their
    declarations and bodies are imported here, after the handshake."""
    from .tool_specs import TOOLS
    from .tools import BODIES

    for spec in TOOLS:
        spec.register(server, _tool_errors(functools.partial(BODIES[spec.name], gateway)))
