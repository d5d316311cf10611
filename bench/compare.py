"""``python -m bench.compare OTHER_TREE``: the clavis proxy of another checkout against this one.

An A/B for a change to the proxy: bare mitmproxy (this tree), the clavis proxy from
``OTHER_TREE`` (e.g. ``git worktree add /tmp/before HEAD~3``) and the clavis proxy from this
tree serve the same upstream, measured back to back in every round, so both are compared with
the same bare baseline under the same machine load (``--base-url``: the clavis proxies are sent
base-URL requests, bare mitmproxy proxied ones as always). ``--workload mcp`` compares the two trees'
``clavis-mcp`` over stdio instead (call_service, ``--requests / 10`` calls per round).
Prints each proxy's median rate, p50 and CPU per request (the proxy process's own, which other
load on the machine moves least) over the rounds and its median ratio to bare, the figures
bench/notes.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
from contextlib import AsyncExitStack
from pathlib import Path

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from . import load, mcp_roundtrip
from .fixture import ROOT, SECRET, SERVICE, Child, World, world
from .proxy_load import _targets
from .stats import Spread, percentile
from .upstream import LARGE, SMALL, SSE

PATHS = {"small": SMALL, "large": LARGE, "sse": SSE}


def importable(tree: Path, into: Path) -> Path:
    """A directory that, on ``PYTHONPATH``, imports ``tree``'s code rather than the installed package.

    A tree from before the namespace change has top-level packages and is importable as it is; a
    later one maps its folders to ``clavis_mcp.*`` (pyproject's package-dir), so it gets a tree of
    links, as scripts/typecheck builds one.
    """
    mapping = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"].get("package-dir", {})
    if not mapping:
        return tree
    for name, folder in mapping.items():
        link = into.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        (link.parent / "__init__.py").touch()
        link.symlink_to(tree / folder)
    return into


def run_from(tree: Path, w: World, into: Path) -> tuple[list[str], dict[str, str]]:
    """``tree``'s ``clavis-mcp`` as a command, and an environment whose ``PYTHONPATH`` imports
    that tree's code (not the installed package's) and whose vault is this world's."""
    path = importable(tree, into)
    env = dict(w.env, PYTHONPATH=os.pathsep.join([str(path), str(tree)]))
    cli = "clavis_mcp.clavis_cli.main" if path != tree else "clavis_cli.main"
    return [sys.executable, "-c", f"import sys; from {cli} import main; sys.argv[0] = 'clavis-mcp'; main()"], env


def other_tree(tree: Path, w: World) -> tuple[list[str], dict[str, str]]:
    """:func:`run_from` for ``tree`` with a vault of its own, made by that tree's CLI, so a change
    of the vault format between the two trees does not matter; the CA is this world's, so the
    agent trusts both trees' proxies alike."""
    command, env = run_from(tree, w, w.root / "other-code")
    home = w.root / "other-home"
    shutil.copytree(w.home / "certs", home / "certs")
    env["CLAVIS_HOME"] = str(home)
    for args, stdin in (
        (["init"], None),
        (["add", SERVICE, "--host", f"127.0.0.1:{w.upstream.port}", "--local", "--secret-stdin"], SECRET),
    ):
        done = subprocess.run([*command, *args], input=stdin, capture_output=True, text=True, env=env, cwd=tree)
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: clavis-mcp {args[0]} failed: {done.stderr.strip()}")
    return command, env


def clavis_from(tree: Path, w: World) -> Child:
    """The clavis proxy host of ``tree``, importing that tree's code."""
    _, env = other_tree(tree, w)
    return Child([sys.executable, "-m", "bench.proxy_host", "clavis"], env, cwd=tree)


async def compare(other: Path, path: str, rounds: int, requests: int, concurrency: int, base_url: bool) -> None:
    with world() as w:
        proxies = {"bare": w.child("bench.proxy_host", "bare"), str(other): clavis_from(other, w)}
        _, env = run_from(ROOT, w, w.root / "code")  # this tree's code, even where another is installed
        proxies["this tree"] = Child([sys.executable, "-m", "bench.proxy_host", "clavis"], env, cwd=ROOT)
        runs: dict[str, list[load.LoadRun]] = {name: [] for name in proxies}
        try:
            for _ in range(rounds):
                for name, child in proxies.items():
                    mode = "bare" if name == "bare" else "base-url" if base_url else "clavis"
                    target = _targets(w, {"bare": child.port, "clavis": child.port}, path)[mode]
                    await load.run(target, max(concurrency, requests // 10), concurrency)  # warm up
                    cpu = load.cpu_clock(child.process.pid)
                    runs[name].append(await load.run(target, requests, concurrency, cpu))
        finally:
            for child in proxies.values():
                child.stop()
    bare = runs.pop("bare")
    print(f"bare mitmproxy: {Spread.of([r.rate for r in bare]).show(0)} req/s, "
          f"p50 {Spread.of([r.p(50) for r in bare]).show(2)} ms, "
          f"CPU {Spread.of([r.cpu_us for r in bare]).show(0)} us/request")  # fmt: skip
    for name, series in runs.items():
        rate = Spread.of([r.rate / b.rate for r, b in zip(series, bare, strict=True)])
        p50 = Spread.of([r.p(50) / b.p(50) for r, b in zip(series, bare, strict=True)])
        print(f"clavis, {name}: {Spread.of([r.rate for r in series]).show(0)} req/s, "
              f"CPU {Spread.of([r.cpu_us for r in series]).show(0)} us/request; "
              f"vs bare: throughput {rate.show(2)}, p50 {p50.show(2)}x")  # fmt: skip


async def compare_mcp(other: Path, rounds: int, calls: int) -> None:
    """call_service over stdio: ``other``'s ``clavis-mcp`` and this tree's, as Claude Desktop runs
    them, alternating in every round; p50 per round and each server's CPU per call (all threads)."""
    with world() as w:
        trees = {str(other): other_tree(other, w), "this tree": run_from(ROOT, w, w.root / "code")}
        servers = {name: StdioServerParameters(command=c[0], args=c[1:], env=env) for name, (c, env) in trees.items()}
        arguments: dict[str, object] = {"service_name": SERVICE, "method": "GET", "url": w.base_url + SMALL}
        p50s: dict[str, list[float]] = {name: [] for name in servers}
        cpus: dict[str, list[float]] = {name: [] for name in servers}
        async with AsyncExitStack() as stack:
            started = {}
            for name, params in servers.items():
                before = set(mcp_roundtrip.children())
                client = await stack.enter_async_context(Client(stdio_client(params, errlog=sys.stderr)))
                (pid,) = set(mcp_roundtrip.children()) - before
                started[name] = (mcp_roundtrip.checked_tool_call(client, arguments), pid)
            for _ in range(rounds):
                for name, (call, pid) in started.items():
                    await call()  # the first call starts the proxy and opens its connection: not counted
                    cpu = mcp_roundtrip.cpu_seconds(pid)
                    latencies = await mcp_roundtrip.timed(call, calls)
                    cpus[name].append((mcp_roundtrip.cpu_seconds(pid) - cpu) * 1e6 / (calls + 1))
                    p50s[name].append(percentile(latencies, 50))
    base = str(other)
    for name in servers:
        ratio = Spread.of([new / old for new, old in zip(p50s[name], p50s[base], strict=True)])
        print(f"call_service over stdio, {name}: p50 {Spread.of(p50s[name]).show(2)} ms, "
              f"server CPU {Spread.of(cpus[name]).show(0)} us/call; p50 vs {base}: {ratio.show(2)}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("other", type=Path, help="another checkout of this repository")
    parser.add_argument("--workload", choices=[*PATHS, "mcp"], default="small", help="mcp: call_service over stdio")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=600, help="requests per proxy and round")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--base-url", action="store_true", help="the clavis proxies in base-URL mode (plain HTTP)")
    args = parser.parse_args()
    if not (args.other / "bench" / "proxy_host.py").exists():
        parser.error(f"{args.other} is not a checkout of this repository")
    if args.other.resolve() == ROOT:
        parser.error("compare against another checkout, e.g. git worktree add /tmp/before HEAD~1")
    if args.workload == "mcp":
        asyncio.run(compare_mcp(args.other.resolve(), args.rounds, max(10, args.requests // 10)))
    else:
        path = PATHS[args.workload]
        asyncio.run(compare(args.other.resolve(), path, args.rounds, args.requests, args.concurrency, args.base_url))


if __name__ == "__main__":
    main()
