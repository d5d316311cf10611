"""The load generator: httpx on asyncio, keep-alive, TLS verified end to end.

Through a proxy it trusts the clavis CA and authenticates with a proxy credential, as an
agent configured by ``clavis-mcp env`` does. Each concurrent client has its own connection,
opened (with its tunnel) before the clock starts, so the figures are for keep-alive requests. Every response is
checked: a benchmark of refused or unredacted requests would measure the wrong thing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from .stats import percentile

TIMEOUT = httpx.Timeout(60.0)


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to send: ``expect`` must appear in every response body."""

    url: str
    verify: ssl.SSLContext
    proxy: httpx.Proxy | None
    headers: dict[str, str]
    expect: bytes


@dataclass(frozen=True, slots=True)
class LoadRun:
    requests: int
    seconds: float
    latencies_ms: list[float]
    first_byte_ms: list[float]
    server_cpu_s: float = 0.0  # CPU the process under test spent in the timed part (0: not measured)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def first_byte(self, q: float) -> float:
        return percentile(self.first_byte_ms, q)

    @property
    def cpu_us(self) -> float:
        """The server's CPU microseconds per request: unlike req/s, barely moved by other load."""
        return self.server_cpu_s * 1e6 / self.requests


def cpu_clock(pid: int) -> Callable[[], float]:
    """Seconds of CPU ``pid``'s threads have run, in nanoseconds' precision (Linux schedstat)."""
    tasks = Path(f"/proc/{pid}/task")

    def clock() -> float:
        total = 0
        for task in tasks.iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                pass  # a thread that ended between the listing and the read
        return total / 1e9

    return clock


async def _one(client: httpx.AsyncClient, target: Target) -> tuple[float, float]:
    """Latency of one request to its last byte, and to its first body byte, in ms."""
    started = time.perf_counter()
    first = 0.0
    parts: list[bytes] = []
    async with client.stream("GET", target.url, headers=target.headers) as response:
        async for chunk in response.aiter_raw():
            if not first:
                first = time.perf_counter()
            parts.append(chunk)
    ended = time.perf_counter()
    if response.status_code != 200:
        raise RuntimeError(f"GET {target.url} answered {response.status_code}: {b''.join(parts)[:200]!r}")
    if target.expect not in b"".join(parts):
        raise RuntimeError(f"GET {target.url}: the response lacks {target.expect!r}")
    return (ended - started) * 1000, ((first or ended) - started) * 1000


async def run(
    target: Target, requests: int, concurrency: int, server_cpu: Callable[[], float] | None = None
) -> LoadRun:
    """``requests`` GETs from ``concurrency`` clients, each with its own keep-alive connection.

    One client per virtual user, not one shared pool: httpx's pool costs the load generator
    about half its rate at 16 connections, which would hide the proxy's own cost."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    verify=target.verify, proxy=target.proxy, limits=limits, timeout=TIMEOUT, trust_env=False
                )
            )
            for _ in range(concurrency)
        ]
        await asyncio.gather(*(_one(client, target) for client in clients))  # open every connection
        remaining = requests
        latencies: list[float] = []
        first_bytes: list[float] = []

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                latency, first = await _one(client, target)
                latencies.append(latency)
                first_bytes.append(first)

        cpu_before = server_cpu() if server_cpu else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        seconds = time.perf_counter() - started
        cpu = server_cpu() - cpu_before if server_cpu else 0.0
    return LoadRun(requests, seconds, latencies, first_bytes, cpu)
