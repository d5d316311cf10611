"""One proxy per process, for the load benchmarks: ``python -m bench.proxy_host bare|clavis``.

mitmproxy keeps global state, so each proxy under test gets its own process (as the
standalone ``clavis-mcp proxy`` would), and the load generator's own CPU use stays out of it.
Both modes are built by the very same ``EmbeddedProxy.start``: ``bare`` only swaps our
addon list for one that streams server-sent events (as our redaction does; mitmproxy alone
would buffer the whole stream), so the engine set-up (core addons, options, lazy connection
strategy, upstream verification) is identical and the difference is our addons' work.

Reads ``CLAVIS_HOME`` and ``CLAVIS_UPSTREAM_CA`` from the environment, prints the port,
and serves until its stdin closes. With ``--profile FILE`` it runs under pyinstrument (the
``bench`` extra) and writes the profile there when it stops; with ``--stages FILE`` it times
each of our stage hooks (:mod:`bench.stages`) and writes that table instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from mitmproxy import http

from clavis_mcp.clavis_cli.runtime import open_runtime
from clavis_mcp.clavis_cli.serve import quiet_logging
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy import embedded as embedded_module
from clavis_mcp.vault.proxy_config import ProxyConfig

from .fixture import PROXY_TOKEN, PROXY_USER
from .stages import StageTimer

MODES = ("bare", "clavis")


class StreamEvents:
    """The engine work our redaction asks for on an event stream: pass it on chunk by chunk."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            flow.response.stream = True


async def serve(mode: str) -> None:
    if mode == "bare":
        embedded_module.default_addons = lambda *args, **kwargs: [StreamEvents()]  # type: ignore[assignment]
    with open_runtime() as runtime:
        config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN})
        embedded = EmbeddedProxy(runtime.vault, runtime.audit, runtime.ca, config)
        port = await embedded.start()
        print(port, flush=True)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await embedded.stop()


def serve_with_stage_timer(mode: str, out: Path) -> None:
    """The clavis proxy with each stage hook timed (:mod:`bench.stages`); the table goes to ``out``."""
    timer = StageTimer(time.thread_time_ns if os.environ.get("BENCH_STAGE_CLOCK") == "cpu" else time.perf_counter_ns)
    ours = embedded_module.with_base_url  # the whole stage list, the base-URL front included
    embedded_module.with_base_url = lambda *args, **kwargs: timer.wrap(ours(*args, **kwargs))  # type: ignore[assignment]
    try:
        asyncio.run(serve(mode))
    finally:
        out.write_text(timer.report())


def main(argv: list[str]) -> None:
    usage = f"usage: python -m bench.proxy_host {'|'.join(MODES)} [--profile FILE | --stages FILE]"
    if len(argv) not in (1, 3) or argv[0] not in MODES or (len(argv) == 3 and argv[1] not in ("--profile", "--stages")):
        raise SystemExit(usage)
    quiet_logging()
    if len(argv) == 1:
        asyncio.run(serve(argv[0]))
        return
    if argv[1] == "--stages":
        serve_with_stage_timer(argv[0], Path(argv[2]))
        return
    from pyinstrument import Profiler

    with Profiler(async_mode="disabled") as profiler:
        asyncio.run(serve(argv[0]))
    Path(argv[2]).write_text(profiler.output_text(show_all=False, color=False))


if __name__ == "__main__":
    main(sys.argv[1:])
