"""One proxy per process, for the load benchmarks: ``python -m bench.proxy_host bare|clavis``.

mitmproxy keeps global state, so each proxy under test gets its own process (as the
standalone ``clavis-mcp proxy`` would), and the load generator's own CPU use stays out of it.
Both modes are built by the very same ``EmbeddedProxy.start``: ``bare`` only swaps our
addon list for an empty one, so the engine set-up (core addons, options, lazy connection
strategy, upstream verification) is identical and the difference is our addons alone.

Reads ``CLAVIS_HOME`` and ``CLAVIS_UPSTREAM_CA`` from the environment, prints the port,
and serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

import proxy.embedded
from clavis_cli.runtime import open_runtime
from clavis_cli.serve import quiet_logging
from proxy import EmbeddedProxy

from .fixture import PROXY_TOKEN, PROXY_USER

MODES = ("bare", "clavis")


async def serve(mode: str) -> None:
    if mode == "bare":
        proxy.embedded.default_addons = lambda *args, **kwargs: []  # type: ignore[assignment]
    with open_runtime() as runtime:
        embedded = EmbeddedProxy(runtime.vault, runtime.audit, runtime.ca, lambda: {PROXY_USER: PROXY_TOKEN})
        port = await embedded.start()
        print(port, flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await embedded.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        raise SystemExit(f"usage: python -m bench.proxy_host {'|'.join(MODES)}")
    quiet_logging()
    asyncio.run(serve(sys.argv[1]))
