"""The process tree under a pid, read from /proc (Linux): which workers `team dev` runs, and
whether anything it started is still alive after it stopped. Used by the team demo and its tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int  # clock ticks since boot: a pid reused later is another process
    state: str
    cmdline: str


def read(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return Proc(pid, int(fields[1]), int(fields[19]), fields[0], raw.replace(b"\0", b" ").decode(errors="replace"))


def snapshot() -> list[Proc]:
    found = (read(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [p for p in found if p is not None]


def descendants(pid: int) -> list[Proc]:
    everything = snapshot()
    result: list[Proc] = []
    parents = {pid}
    while True:
        new = [p for p in everything if p.ppid in parents and p not in result]
        if not new:
            return result
        result += new
        parents = {p.pid for p in new}


def alive(proc: Proc) -> bool:
    """The same process (pid and start time) still exists and is not a zombie."""
    now = read(proc.pid)
    return now is not None and now.start == proc.start and now.state != "Z"


def workers(root: int) -> list[Proc]:
    """The team server's worker processes under ``root``: the children it spawned (not its resource tracker)."""
    tree = descendants(root)
    servers = {p.pid for p in tree if "clavis_mcp.team.serve" in p.cmdline}
    return [p for p in tree if p.ppid in servers and "spawn_main" in p.cmdline]


def open_dirs(pid: int, parent: Path, name_prefix: str) -> set[Path]:
    """The folders ``parent/name_prefix*`` holding a file ``pid`` has open (a worker's private mirror)."""
    found = set()
    try:
        for fd in (PROC / str(pid) / "fd").iterdir():
            try:
                target = Path(os.readlink(fd))
            except OSError:
                continue
            if target.is_relative_to(parent) and target != parent:
                top = parent / target.relative_to(parent).parts[0]
                if top.name.startswith(name_prefix):
                    found.add(top)
    except (FileNotFoundError, PermissionError):
        pass
    return found
