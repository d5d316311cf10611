"""The standalone proxy for HTTPS_PROXY agents: `clavis-mcp proxy` in the foreground.

Same addons and policy as the MCP server's embedded proxy; clients authenticate with their
per-agent tokens from the vault. Services and agents are re-read whenever any process changes
the vault, so `clavis-mcp add` or `agent revoke` in another terminal applies at once.
SIGINT and SIGTERM stop it cleanly: new requests refused, those in flight finished (or, after a
grace period, failed), every one of them recorded, then the listeners and the vault closed
(:mod:`.draining`). An upstream that does not answer in time gets the agent a 504
(:mod:`.upstream_timeout`); a request body over the bound is refused, 413 (:mod:`.body_limit`).

The ready line is the first line on standard output and names the bound URL, so with
``--port 0`` scripts and tests read the port the system chose instead of probing for a free
one (a probe races: the port can be taken between the check and the bind).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import replace

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.agents import AgentTokens
from clavis_mcp.vault.errors import LimitsError
from clavis_mcp.vault.proxy_config import ProxyConfig

from .body_limit import RequestBodyLimit, limit_bytes
from .draining import GRACE_SECONDS, Draining
from .embedded import EmbeddedProxy
from .upstream_timeout import UpstreamTimeout, timeout_seconds

DEFAULT_PORT = 8899


async def serve_until_signalled(
    vault: Vault,
    audit: AuditLog,
    ca: LocalCA,
    config: ProxyConfig,
    *,
    port: int,
    announce: Callable[[str], None],
    grace: float = GRACE_SECONDS,
) -> None:
    """Serve ``config`` to the vault's agents: its ``tokens`` are replaced by their per-agent tokens."""
    try:
        bounds = (UpstreamTimeout(timeout_seconds(config.upstream_timeout)),
                  RequestBodyLimit(limit_bytes(config.max_request_body)))  # fmt: skip
    except ValueError as exc:
        raise LimitsError(str(exc)) from None
    draining = Draining()
    config = replace(config, tokens=AgentTokens(vault), extra_addons=(*config.extra_addons, *bounds, draining))
    proxy = EmbeddedProxy(vault, audit, ca, config, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except NotImplementedError:  # Windows: Ctrl-C cancels asyncio.run, and `finally` still stops
            pass
    try:
        await proxy.start()
        services = len(vault.snapshot().services)
        agents = len(config.tokens())
        announce(
            f"clavis-mcp proxy listening on {proxy.url} for {services} service{'s' * (services != 1)} "
            f"and {agents} agent{'s' * (agents != 1)}; CA {ca.cert_path}"
        )
        announce(f"base-URL mode on the same port: {proxy.url}/s/<service>/<path> (see `clavis-mcp env --base-urls`)")
        if config.passthrough:
            announce("passthrough (not intercepted, no credential): " + ", ".join(map(str, config.passthrough)))
        await stop.wait()
        announce(f"clavis-mcp proxy stopping: {draining.in_flight} request(s) in flight, new ones refused")
        failed = await draining.drain(grace)
        if failed:
            announce(f"{failed} request(s) still waiting after {grace:g} s were ended and recorded as errors")
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await proxy.stop()
