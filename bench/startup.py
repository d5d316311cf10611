"""Section 4: start-up of ``clavis-mcp`` over stdio against a minimal MCPServer, idle memory,
and the CLI's own start-up (``--version``, ``--help``) against a bare ``python -c pass``.

``python -m bench.startup`` prints the CLI figures alone, in a second or two.

Both servers run with bytecode as an installed package has it: compiled once, by an unmeasured
first start, into a cache of this run's own (nothing is written into the checkout), then reused.
A shell with ``PYTHONDONTWRITEBYTECODE`` set recompiled, at every start, each module edited since
its ``.pyc`` was written: milliseconds of clavis-mcp's start-up that followed what had been edited.

Both servers are spawned the same way (a Python process speaking JSON-RPC on its pipes) and
timed from spawn to the answer to ``initialize``, then to the answer to ``tools/list``. The
idle RSS is read from /proc after a call_service has started the embedded proxy.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .fixture import EXE, ROOT, SERVICE, World
from .stats import Row, Spread, Target
from .upstream import SMALL

SECTION = "4. start-up over stdio, and idle memory"
PROTOCOL = "2025-06-18"
IDLE_SETTLE_SECONDS = 0.5


class StdioServer:
    """A server subprocess driven with raw JSON-RPC lines, so no client library sits in the timing."""

    def __init__(self, args: list[str], env: dict[str, str], errlog: Path) -> None:
        self._err = errlog.open("a")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=ROOT, text=True
        )
        self._next_id = 0

    def request(self, method: str, params: dict[str, object]) -> tuple[dict[str, object], float]:
        """Send one request; return its answer and the seconds since spawn when it arrived."""
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the server exited before answering {method}; see its stderr in {self._err.name}")
            message = json.loads(line)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message, time.perf_counter() - self.started

    def send(self, message: dict[str, object]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def cpu_ms(self) -> float:
        """CPU time the server's live threads have run, from /proc (nanoseconds, unlike the 10 ms ticks of
        getrusage): the work it did, which other load on the machine moves far less than the wall time."""
        tasks = Path(f"/proc/{self.process.pid}/task").iterdir()
        return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks) / 1e6

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS in /proc status")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._err.close()


def _handshake(server: StdioServer) -> tuple[float, float, float]:
    """Milliseconds from spawn to the answer to ``initialize``, and to ``tools/list``; the server's
    CPU milliseconds when ``initialize`` was answered."""
    init_params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
    _, initialized = server.request("initialize", init_params)
    cpu = server.cpu_ms()
    server.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    _, listed = server.request("tools/list", {})
    return initialized * 1000, listed * 1000, cpu


CLI_RUNS = 10


def _run_once(args: list[str], env: dict[str, str] | None) -> tuple[float, float]:
    """Wall and CPU (user + system, of the child) milliseconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000, cpu * 1000


def cli_rows(runs: int = CLI_RUNS, env: dict[str, str] | None = None) -> tuple[list[Row], list[Target]]:
    """Wall and CPU time of ``clavis-mcp --version`` and ``--help``, paired per run with a bare interpreter.

    CPU time is the figure the target is set on: on a busy machine wall time measures the queue."""
    bare: dict[str, list[float]] = {"wall": [], "cpu": []}
    times = {flag: {"wall": [], "cpu": []} for flag in ("--version", "--help")}
    for _ in range(runs):
        for key, value in zip(("wall", "cpu"), _run_once([sys.executable, "-c", "pass"], env), strict=True):
            bare[key].append(value)
        for flag, values in times.items():
            for key, value in zip(("wall", "cpu"), _run_once([EXE, flag], env), strict=True):
                values[key].append(value)
    baseline = "python -c pass"
    rows = [Row.paired(SECTION, f"clavis-mcp {flag} ({key})", "ms", (f"clavis-mcp {flag}", values[key]),
                       (baseline, bare[key])) for flag, values in times.items() for key in ("wall", "cpu")]  # fmt: skip
    targets = [Target(f"clavis-mcp {flag} CPU", f"{Spread.of(values['cpu']).median:.0f} ms", "< 200 ms",
                      Spread.of(values["cpu"]).median < 200) for flag, values in times.items()]  # fmt: skip
    return rows, targets


def compiled_once(env: dict[str, str], root: Path) -> dict[str, str]:
    """``env`` with bytecode written to, and read from, a cache under ``root``."""
    env = {name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(root / "pycache")}


async def measure(
    world: World, rounds: int, scale: float, progress: Callable[[str], None]
) -> tuple[list[Row], list[Target]]:
    errlog = world.root / "bench-startup.log"
    env = compiled_once(world.env, world.root)
    commands = {"clavis": [EXE], "minimal": [sys.executable, "-m", "bench.minimal_server"]}
    init: dict[str, list[float]] = {"clavis": [], "minimal": []}
    listed: dict[str, list[float]] = {"clavis": [], "minimal": []}
    init_cpu: dict[str, list[float]] = {"clavis": [], "minimal": []}
    rss: dict[str, list[float]] = {"clavis": [], "minimal": []}
    call = {
        "name": "call_service",
        "arguments": {"service_name": SERVICE, "method": "GET", "url": world.base_url + SMALL},
    }
    progress("start-up, compiling both servers' bytecode")
    for args in commands.values():
        server = StdioServer(args, env, errlog)
        try:
            _handshake(server)
        finally:
            server.close()
    for round_ in range(rounds):
        progress(f"start-up, round {round_ + 1}/{rounds}")
        for name, args in commands.items():
            server = StdioServer(args, env, errlog)
            try:
                initialized, tools, cpu = _handshake(server)
                init[name].append(initialized)
                listed[name].append(tools)
                init_cpu[name].append(cpu)
                if name == "clavis":
                    answer, _ = server.request("tools/call", call)
                    if answer.get("result", {}).get("isError"):  # type: ignore[union-attr]
                        raise RuntimeError(f"call_service failed while measuring memory: {answer}")
                time.sleep(IDLE_SETTLE_SECONDS)
                rss[name].append(server.rss_mib())
            finally:
                server.close()
    clavis, minimal = "clavis-mcp", "minimal MCPServer (1 tool)"
    rows = [
        Row.paired(SECTION, "spawn → initialize answered", "ms", (clavis, init["clavis"]), (minimal, init["minimal"])),
        Row.paired(
            SECTION, "spawn → tools/list answered", "ms", (clavis, listed["clavis"]), (minimal, listed["minimal"])
        ),
        Row.paired(
            SECTION, "CPU until initialize answered", "ms", (clavis, init_cpu["clavis"]), (minimal, init_cpu["minimal"])
        ),
        Row.paired(
            SECTION,
            "idle RSS (clavis: after a call started the proxy)",
            "MiB",
            (clavis, rss["clavis"]),
            (minimal, rss["minimal"]),
        ),  # fmt: skip
    ]
    ratio = rows[0].ratio.median
    idle = Spread.of(rss["clavis"]).median
    targets = [
        Target("initialize vs minimal MCPServer", f"{ratio:.2f}×", "≤ 1.1×", ratio <= 1.1),
        Target("idle RSS with the embedded proxy", f"{idle:.0f} MiB", "< 150 MB (143 MiB)", idle * 1024 * 1024 < 150e6),
    ]
    cli, cli_targets = cli_rows(max(rounds, 3), world.env)
    return rows + cli, targets + cli_targets


if __name__ == "__main__":
    cli, cli_targets = cli_rows()
    for row in cli:
        print(f"{row.case}: {row.value.show(1)} ms; {row.baseline}: {row.baseline_value.show(1)} ms")
    for target in cli_targets:
        print(f"{target.verdict} {target.name}: {target.measured} ({target.limit})")
