"""``python -m bench.profile [small|large|sse|mcp] [--stages]``: where the time goes, as evidence for a miss.

``small``/``large``/``sse`` start the clavis proxy under pyinstrument (the ``bench`` extra)
and send the benchmark's load for that response through it; with ``--stages`` the proxy runs
without a profiler and times each of our stage hooks instead (microseconds per request, the
figures bench/notes.md quotes; ``BENCH_STAGE_CLOCK=cpu`` charges each hook its thread's CPU time,
which other load on the machine inflates less, and ``BENCH_STAGE_GC=off`` keeps the collector's
passes out of whichever stage allocates when one is due). ``mcp`` profiles sequential
call_service calls through an in-memory MCP session (client, server and embedded proxy all in
this process, which imports the installed package). The proxy child imports this checkout's code,
so a worktree profiles its own. The result is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from mcp import Client
from pyinstrument import Profiler

from clavis_mcp.clavis_cli.runtime import open_runtime
from clavis_mcp.mcp_front import Gateway, build_server

from . import load
from .compare import run_from
from .fixture import ROOT, SERVICE, Child, world
from .proxy_load import _targets
from .upstream import LARGE, SMALL, SSE

PATHS = {"small": SMALL, "large": LARGE, "sse": SSE}


async def profile_proxy(
    path: str, requests: int, concurrency: int, out: Path, how: str = "--profile", mode: str = "clavis"
) -> str:
    with world() as w:
        _, env = run_from(ROOT, w, w.root / "code")  # this tree's code, even where another is installed
        child = Child([sys.executable, "-m", "bench.proxy_host", "clavis", how, str(out)], env, cwd=ROOT)
        try:
            target = _targets(w, {"bare": child.port, "clavis": child.port}, path)[mode]
            await load.run(target, requests, concurrency)
        finally:
            child.stop()
    return out.read_text()


async def profile_mcp(calls: int) -> str:
    with world() as w, open_runtime() as runtime:
        gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
        arguments = {"service_name": SERVICE, "method": "GET", "url": w.base_url + SMALL}
        async with Client(build_server(gateway)) as client:
            await client.call_tool("call_service", arguments)
            with Profiler(async_mode="disabled") as profiler:
                for _ in range(calls):
                    await client.call_tool("call_service", arguments)
    return profiler.output_text(color=False)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", nargs="?", default="small", choices=[*PATHS, "mcp"])
    parser.add_argument("--requests", type=int, default=400, help="requests (or calls) to profile")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stages", action="store_true", help="time each stage hook instead of profiling")
    parser.add_argument("--base-url", action="store_true", help="send in base-URL mode (plain HTTP to /s/bench/...)")
    args = parser.parse_args()
    if args.what == "mcp":
        print(asyncio.run(profile_mcp(args.requests)))
        return
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "profile.txt"
        how = "--stages" if args.stages else "--profile"
        mode = "base-url" if args.base_url else "clavis"
        print(asyncio.run(profile_proxy(PATHS[args.what], args.requests, args.concurrency, out, how, mode)))


if __name__ == "__main__":
    main()
