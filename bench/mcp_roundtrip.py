"""Section 3: a call_service round trip through a real MCP client session, against direct httpx.

Two sessions, as the product is used: in memory (client, server and embedded proxy on one
event loop) and over stdio with ``clavis-mcp`` as a subprocess, the way Claude Desktop runs
it. The baseline is the same GET sent straight to the upstream by a keep-alive httpx client
carrying the credential itself. Calls are sequential: this is the latency a model waits for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from clavis_mcp.clavis_cli.runtime import open_runtime
from clavis_mcp.mcp_front import Gateway, build_server

from .fixture import EXE, SECRET, SERVICE, World
from .stats import Row, Target, percentile
from .upstream import SMALL

SECTION = "3. call_service round trip (small JSON, sequential)"
CALLS = 60
REDACTED = f"[REDACTED:{SERVICE}]"


def _checked_tool_call(client: Client, arguments: dict[str, object]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        result = await client.call_tool("call_service", arguments)
        text = json.dumps(result.model_dump(mode="json"))
        if result.is_error or REDACTED not in text or SECRET in text:
            raise RuntimeError(f"call_service did not return a redacted success: {text[:300]}")

    return call


async def _timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    await call()  # warm: the proxy starts and the tunnel opens on the first call
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def measure(
    world: World, rounds: int, scale: float, progress: Callable[[str], None]
) -> tuple[list[Row], list[Target]]:
    url = world.base_url + SMALL
    arguments: dict[str, object] = {"service_name": SERVICE, "method": "GET", "url": url}
    count = max(10, int(CALLS * scale))
    samples: dict[str, list[float]] = {"direct": [], "memory": [], "stdio": []}
    async with AsyncExitStack() as stack:
        runtime = stack.enter_context(open_runtime())
        gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
        stack.push_async_callback(gateway.aclose)
        errlog = stack.enter_context((world.root / "bench-stdio.log").open("w"))
        params = StdioServerParameters(command=EXE, args=[], env=world.env)
        memory = await stack.enter_async_context(Client(build_server(gateway)))
        stdio = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog)))
        direct = await stack.enter_async_context(httpx.AsyncClient(verify=world.upstream_trust(), trust_env=False))

        async def direct_call() -> None:
            response = await direct.get(url, headers={"Authorization": f"Bearer {SECRET}"})
            if response.status_code != 200 or SECRET not in response.text:
                raise RuntimeError(f"direct GET answered {response.status_code}")

        calls = {
            "direct": direct_call,
            "memory": _checked_tool_call(memory, arguments),
            "stdio": _checked_tool_call(stdio, arguments),
        }
        for round_ in range(rounds):
            progress(f"call_service round trip, round {round_ + 1}/{rounds}")
            for name, call in calls.items():
                latencies = await _timed(call, count)
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
    return rows, targets
