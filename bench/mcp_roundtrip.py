"""Section 3: a call_service round trip through a real MCP client session, against direct httpx.

Two sessions, as the product is used: in memory (client, server and embedded proxy on one
event loop) and over stdio with ``clavis-mcp`` as a subprocess, the way Claude Desktop runs
it. The baseline is the same GET sent straight to the upstream by a keep-alive httpx client
carrying the credential itself. Calls are sequential: this is the latency a model waits for.

``python -m bench.mcp_roundtrip`` runs the section alone. Beside the latencies it reports the
stdio server process's CPU per call (all its threads, from ``/proc``: load-independent), and the
floor any MCP tool call over stdio pays (the minimal server of the start-up section, one echo);
with ``--stages`` where an in-memory call spends its time, stage by stage (timing hooks put in
here, not in the product).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from clavis_mcp.clavis_cli.runtime import open_runtime
from clavis_mcp.mcp_front import Gateway, build_server

from .fixture import EXE, SECRET, SERVICE, World, world
from .stats import Row, Target, percentile
from .upstream import SMALL

SECTION = "3. call_service round trip (small JSON, sequential)"
CALLS = 60
REDACTED = f"[REDACTED:{SERVICE}]"
TARGET_RATIO = 3.0  # issue 18, point 3: call_service over stdio within 3x direct httpx, p50


def checked_tool_call(client: Client, arguments: dict[str, object]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        result = await client.call_tool("call_service", arguments)
        text = json.dumps(result.model_dump(mode="json"))
        if result.is_error or REDACTED not in text or SECRET in text:
            raise RuntimeError(f"call_service did not return a redacted success: {text[:300]}")

    return call


async def timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    await call()  # warm: the proxy starts and the connection to it opens on the first call
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def children() -> list[int]:
    """This process's child processes (the stdio server), from /proc."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by every thread of ``pid`` (schedstat: nanoseconds, not clock ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError):
            continue
    return total / 1e9


async def measure(
    world: World, rounds: int, scale: float, progress: Callable[[str], None]
) -> tuple[list[Row], list[Target]]:
    url = world.base_url + SMALL
    arguments: dict[str, object] = {"service_name": SERVICE, "method": "GET", "url": url}
    count = max(10, int(CALLS * scale))
    samples: dict[str, list[float]] = {"direct": [], "memory": [], "stdio": [], "floor": [], "stdio-cpu": []}
    async with AsyncExitStack() as stack:
        runtime = stack.enter_context(open_runtime())
        gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
        stack.push_async_callback(gateway.aclose)
        errlog = stack.enter_context((world.root / "bench-stdio.log").open("w"))
        params = StdioServerParameters(command=EXE, args=[], env=world.env)
        memory = await stack.enter_async_context(Client(build_server(gateway)))
        before = set(children())
        stdio = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog)))
        server_pid = next(iter(set(children()) - before), None)
        floor_params = StdioServerParameters(command=sys.executable, args=["-m", "bench.minimal_server"], env=world.env)
        floor = await stack.enter_async_context(Client(stdio_client(floor_params, errlog=errlog)))
        direct = await stack.enter_async_context(httpx.AsyncClient(verify=world.upstream_trust(), trust_env=False))

        async def direct_call() -> None:
            response = await direct.get(url, headers={"Authorization": f"Bearer {SECRET}"})
            if response.status_code != 200 or SECRET not in response.text:
                raise RuntimeError(f"direct GET answered {response.status_code}")

        async def floor_call() -> None:  # what any MCP tool call over stdio costs: one echo, no I/O
            if (await floor.call_tool("echo", {"text": "hi"})).is_error:
                raise RuntimeError("the minimal server's echo failed")

        calls = {
            "direct": direct_call,
            "memory": checked_tool_call(memory, arguments),
            "stdio": checked_tool_call(stdio, arguments),
            "floor": floor_call,
        }
        for round_ in range(rounds):
            progress(f"call_service round trip, round {round_ + 1}/{rounds}")
            for name, call in calls.items():
                counted = name == "stdio" and server_pid is not None
                if counted:
                    await call()  # the first call starts the proxy: not counted
                cpu = cpu_seconds(server_pid) if server_pid is not None else 0.0
                latencies = await timed(call, count)
                if counted and server_pid is not None:  # _timed warms up with one more call: count + 1 calls
                    samples["stdio-cpu"].append((cpu_seconds(server_pid) - cpu) * 1e6 / (count + 1))
                samples[name].append(percentile(latencies, 50))
                samples.setdefault(f"{name}-p95", []).append(percentile(latencies, 95))
    subjects = {"memory": "call_service, in-memory MCP session", "stdio": "call_service, clavis-mcp over stdio"}
    rows, targets = [], []
    for key, subject in subjects.items():
        for metric, suffix in (("p50 ms", ""), ("p95 ms", "-p95")):
            rows.append(
                Row.paired(
                    SECTION,
                    "sequential",
                    metric,
                    (subject, samples[key + suffix]),
                    ("direct httpx", samples["direct" + suffix]),
                )
            )
        p50 = rows[-2].value.median
        direct_p50 = rows[-2].baseline_value.median
        limit = 1.5 * direct_p50 + 5
        targets.append(
            Target(f"{subject} p50", f"{p50:.2f} ms", f"≤ 1.5 × {direct_p50:.2f} + 5 = {limit:.2f} ms", p50 <= limit)
        )
    ratio = rows[-2].ratio.median
    targets.append(
        Target(
            "call_service over stdio p50 / direct httpx p50 (issue 18.3)",
            f"{ratio:.2f}×",
            f"≤ {TARGET_RATIO:g}×",
            ratio <= TARGET_RATIO,
        )
    )
    rows.append(
        Row.paired(
            SECTION,
            "sequential",
            "p50 ms",
            ("minimal MCPServer over stdio, one echo tool", samples["floor"]),
            ("direct httpx", samples["direct"]),
        )
    )
    if samples["stdio-cpu"]:
        rows.append(
            Row.paired(
                SECTION,
                "sequential",
                "server CPU µs/call",
                ("clavis-mcp over stdio, all threads", samples["stdio-cpu"]),
                ("direct httpx p50 µs", [v * 1000 for v in samples["direct"]]),
            )
        )
    return rows, targets


class StageTimer:
    """Timing hooks wrapped around named functions for one run: wall and CPU (this thread) per call."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        """Time ``owner.attribute`` (or ``owner[attribute]`` for a dict) as ``stage``."""
        original = owner[attribute] if isinstance(owner, dict) else getattr(owner, attribute)
        wall, cpu = self.wall[stage], self.cpu[stage]

        if asyncio.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started, used = time.perf_counter(), time.thread_time()
                try:
                    return await original(*args, **kwargs)
                finally:
                    wall.append(time.perf_counter() - started)
                    cpu.append(time.thread_time() - used)

            replacement: object = timed_async
        else:

            def timed(*args: Any, **kwargs: Any) -> Any:
                started, used = time.perf_counter(), time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    wall.append(time.perf_counter() - started)
                    cpu.append(time.thread_time() - used)

            replacement = timed
        self._undo.append((owner, attribute, original))
        self._set(owner, attribute, replacement)

    @staticmethod
    def _set(owner: object, attribute: str, value: object) -> None:
        if isinstance(owner, dict):
            owner[attribute] = value
        else:
            setattr(owner, attribute, value)

    def clear(self) -> None:
        for values in (*self.wall.values(), *self.cpu.values()):
            values.clear()

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._undo):
            self._set(owner, attribute, original)
        self._undo.clear()

    def report(self, calls: int) -> str:
        lines = [f"{'stage':44} {'wall µs/call':>13} {'cpu µs/call':>12} {'times/call':>10}"]
        for stage, values in self.wall.items():
            if values:
                cpu = self.cpu[stage]
                lines.append(f"{stage:44} {sum(values) * 1e6 / calls:13.0f} {sum(cpu) * 1e6 / calls:12.0f} "
                             f"{len(values) / calls:10.2f}")  # fmt: skip
        return "\n".join(lines)


@contextmanager
def stage_hooks() -> Iterator[StageTimer]:
    """Hooks on the stages of an in-memory call: the SDK's handling, the tool body and its parts,
    the hop through the proxy (head, then body), the rendering of the result."""
    from mcp.client.client import Client as SdkClient
    from mcp.client.session import ClientSession
    from mcp.server.mcpserver.tools import base
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

    from clavis_mcp.mcp_front import arguments, confirm, gateway, service_call, tools
    from clavis_mcp.proxy.in_process import InProcessTransport
    from clavis_mcp.vault import Vault

    timer = StageTimer()
    for owner, attribute, stage in (
        (SdkClient, "call_tool", "client: call_tool, all of it"),
        (ClientSession, "validate_tool_result", "client: output schema validation"),
        (arguments.ClavisServer, "call_tool", "server: SDK call_tool (validation, tool, result)"),
        (FuncMetadata, "validate_arguments", "  SDK: argument validation"),
        (base, "resolve_arguments", "  SDK: Resolve (confirm_write), where it may ask"),
        (confirm, "approval_policy", "    approval_policy (the snapshot's)"),
        (Vault, "get_service", "  Vault.get_service (all callers)"),
        (FuncMetadata, "convert_result", "  SDK: convert_result"),
        (tools.BODIES, "call_service", "tool body: call_service"),
        (tools, "prepare_call", "  prepare_call (URL, headers, body checks)"),
        (tools, "perform_call", "  perform_call"),
        (gateway.Gateway, "fetch", "    Gateway.fetch (one hop)"),
        (InProcessTransport, "send", "      in-process hop: proxy + upstream to head"),
        (gateway._Download, "read", "      body read and decode"),
        (gateway.Gateway, "redactor", "      Gateway.redactor (x3)"),
        (service_call, "_result", "    _result (render, scrub, headers)"),
        (service_call, "render_body", "      render_body (scan, JSON parse, rescrub)"),
        (service_call, "shown_headers", "      shown_headers"),
        (tools, "as_tool_result", "  as_tool_result (model_dump, summary)"),
    ):
        timer.wrap(owner, attribute, stage)
    try:
        yield timer
    finally:
        timer.restore()


async def stages(calls: int) -> str:
    """Per-stage figures for ``calls`` sequential in-memory call_service calls, and direct httpx."""
    with world() as w, open_runtime() as runtime, stage_hooks() as timer:
        gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
        url = w.base_url + SMALL
        arguments: dict[str, object] = {"service_name": SERVICE, "method": "GET", "url": url}
        async with Client(build_server(gateway)) as client:
            call = checked_tool_call(client, arguments)
            await call()
            timer.clear()
            started, used = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                await call()
            wall, cpu = time.perf_counter() - started, time.thread_time() - used
        timer.restore()
        async with httpx.AsyncClient(verify=w.upstream_trust(), trust_env=False) as direct:
            await direct.get(url)
            direct_started = time.perf_counter()
            for _ in range(calls):
                await direct.get(url, headers={"Authorization": f"Bearer {SECRET}"})
            direct_wall = time.perf_counter() - direct_started
    return (
        f"{calls} sequential in-memory calls: {wall * 1e6 / calls:.0f} µs wall, {cpu * 1e6 / calls:.0f} µs CPU "
        f"(client, server and proxy in this thread) per call; direct httpx {direct_wall * 1e6 / calls:.0f} µs\n"
        + timer.report(calls)
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mcp_roundtrip", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument("--scale", type=float, default=1.0, help=f"multiply the {CALLS} calls per round")
    parser.add_argument("--stages", type=int, metavar="CALLS", help="time each stage of CALLS in-memory calls instead")
    args = parser.parse_args()
    if args.stages:
        print(asyncio.run(stages(args.stages)))
        return
    from .report import print_table

    async def run() -> tuple[list[Row], list[Target]]:
        with world() as w:
            return await measure(w, args.rounds, args.scale, lambda message: None)

    print_table(*asyncio.run(run()))


if __name__ == "__main__":
    main()
