"""``python -m bench.compare OTHER_TREE``: the clavis proxy of another checkout against this one.

An A/B for a change to the proxy: bare mitmproxy (this tree), the clavis proxy from
``OTHER_TREE`` (e.g. ``git worktree add /tmp/before HEAD~3``) and the clavis proxy from this
tree serve the same upstream, measured back to back in every round, so both are compared with
the same bare baseline under the same machine load. Prints each proxy's median rate, p50 and CPU
per request (the proxy process's own, which other load on the machine moves least) over the
rounds and its median ratio to bare, the figures bench/notes.md quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from . import load
from .fixture import ROOT, SECRET, SERVICE, Child, World, world
from .proxy_load import _targets
from .stats import Spread
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


def clavis_from(tree: Path, w: World) -> Child:
    """The clavis proxy host of ``tree``, importing that tree's code (not this one's).

    It gets a vault of its own, made by that tree's CLI, so a change of the vault format between
    the two trees does not matter; the CA is this world's, so the agent trusts both proxies alike.
    """
    path = importable(tree, w.root / "other-code")
    home = w.root / "other-home"
    shutil.copytree(w.home / "certs", home / "certs")
    env = dict(w.env, PYTHONPATH=os.pathsep.join([str(path), str(tree)]), CLAVIS_HOME=str(home))
    cli = "clavis_mcp.clavis_cli.main" if path != tree else "clavis_cli.main"
    run = f"import sys; from {cli} import main; sys.argv[0] = 'clavis-mcp'; main()"
    for args, stdin in (
        (["init"], None),
        (["add", SERVICE, "--host", f"127.0.0.1:{w.upstream.port}", "--local", "--secret-stdin"], SECRET),
    ):
        done = subprocess.run(
            [sys.executable, "-c", run, *args], input=stdin, capture_output=True, text=True, env=env, cwd=tree
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: clavis-mcp {args[0]} failed: {done.stderr.strip()}")
    return Child([sys.executable, "-m", "bench.proxy_host", "clavis"], env, cwd=tree)


async def compare(other: Path, path: str, rounds: int, requests: int, concurrency: int) -> None:
    with world() as w:
        proxies = {"bare": w.child("bench.proxy_host", "bare"), str(other): clavis_from(other, w)}
        proxies["this tree"] = w.child("bench.proxy_host", "clavis")
        runs: dict[str, list[load.LoadRun]] = {name: [] for name in proxies}
        try:
            for _ in range(rounds):
                for name, child in proxies.items():
                    mode = "bare" if name == "bare" else "clavis"
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("other", type=Path, help="another checkout of this repository")
    parser.add_argument("--workload", choices=list(PATHS), default="small")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=600, help="requests per proxy and round")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    if not (args.other / "bench" / "proxy_host.py").exists():
        parser.error(f"{args.other} is not a checkout of this repository")
    if args.other.resolve() == ROOT:
        parser.error("compare against another checkout, e.g. git worktree add /tmp/before HEAD~1")
    asyncio.run(compare(args.other.resolve(), PATHS[args.workload], args.rounds, args.requests, args.concurrency))


if __name__ == "__main__":
    main()
