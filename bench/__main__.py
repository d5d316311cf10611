"""``python -m bench``: run every benchmark, print the table, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import core_costs, curves, mcp_roundtrip, proxy_load, startup
from .fixture import ROOT, World, world
from .report import Machine, markdown, print_table, revision
from .stats import Row, Target

type Section = Callable[[World, int, float, Callable[[str], None]], Awaitable[tuple[list[Row], list[Target]]]]
SECTIONS: dict[str, Section] = {
    "proxy": proxy_load.measure,
    "mcp": mcp_roundtrip.measure,
    "startup": startup.measure,
    "core": core_costs.measure,
    "curves": curves.measure,
}
NOTES = Path(__file__).with_name("notes.md")


STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[bench {time.perf_counter() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


async def run_all(names: list[str], rounds: int, scale: float) -> tuple[list[Row], list[Target]]:
    rows: list[Row] = []
    targets: list[Target] = []
    with world() as w:
        for name in names:
            section_rows, section_targets = await SECTIONS[name](w, rounds, scale, progress)
            rows += section_rows
            targets += section_targets
    return rows, targets


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (default 5)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts, e.g. 0.2 for a smoke run")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS), help="sections to run")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="where to write the report"
    )
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("at least 3 rounds are needed for a median and a spread")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows, targets = asyncio.run(run_all(args.only, args.rounds, args.scale))
    seconds = time.perf_counter() - started
    print_table(rows, targets)
    if not args.no_write:
        notes = NOTES.read_text() if NOTES.exists() else ""
        text = markdown(
            rows,
            targets,
            Machine.here(),
            args.rounds,
            revision(ROOT),
            notes,
            seconds,
            (load_before, os.getloadavg()[0]),
            curves.FIGURES,
        )
        args.output.write_text(text)
        progress(f"wrote {args.output}")


if __name__ == "__main__":
    main()
