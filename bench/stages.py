"""Per-stage timing of the clavis proxy: how much each of our addons' hooks costs per request.

A profiler inflates pure-Python code several times over on this machine and hides where a
sequential request's time goes; a ``perf_counter_ns`` around each stage hook inside the
running proxy does not. Used by ``python -m bench.profile stages`` (through
``bench.proxy_host --stages FILE``): each stage's hook is replaced, on the instance, by a timed
wrapper of the same kind (sync or async), so the pipeline runs exactly as in production.
"""

from __future__ import annotations

import functools
import gc
import inspect
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from clavis_mcp.addons.pipeline import HOOKS

PER_REQUEST_HOOK = ("AuditTrail", "response")  # called once for every proxied request
GC_ENV = "BENCH_STAGE_GC"  # "off": the proxy runs without the garbage collector while it is timed


class StageTimer:
    """``clock`` is wall time by default; ``time.thread_time_ns`` counts only this thread's CPU,
    which other load on the machine does not inflate (a preempted hook is not charged). With
    ``BENCH_STAGE_GC=off`` the collector is off, so each stage is charged its own work only."""

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._clock = clock
        if os.environ.get(GC_ENV) == "off":
            gc.disable()  # its passes would land in whichever stage allocates when one is due
        self.nanoseconds: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.calls: defaultdict[tuple[str, str], int] = defaultdict(int)

    def wrap(self, stages: Sequence[object]) -> Sequence[object]:
        for stage in stages:
            for hook in HOOKS:
                method = getattr(stage, hook, None)
                if callable(method):
                    setattr(stage, hook, self._timed((type(stage).__name__, hook), method))
        return stages

    def _timed(self, key: tuple[str, str], method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def timed_async(*args: object) -> None:
                started = self._clock()
                try:
                    await method(*args)
                finally:
                    self._add(key, started)

            return timed_async

        @functools.wraps(method)
        def timed(*args: object) -> None:
            started = self._clock()
            try:
                method(*args)
            finally:
                self._add(key, started)

        return timed

    def _add(self, key: tuple[str, str], started: int) -> None:
        self.nanoseconds[key] += self._clock() - started
        self.calls[key] += 1

    def report(self) -> str:
        requests = self.calls.get(PER_REQUEST_HOOK, 0) or 1
        lines = [f"{'stage':20} {'hook':16} {'us/request':>10}  calls"]
        total = 0.0
        for key in sorted(self.nanoseconds, key=self.nanoseconds.__getitem__, reverse=True):
            per_request = self.nanoseconds[key] / requests / 1000
            total += per_request
            lines.append(f"{key[0]:20} {key[1]:16} {per_request:10.1f}  {self.calls[key]}")
        lines.append(f"{'all stages':37} {total:10.1f}  over {requests} requests")
        return "\n".join(lines) + "\n"
