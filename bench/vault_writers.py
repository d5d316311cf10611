"""Busy writers on one vault: processes x operations of add / rotate / remove, with failures and latency.

Each of ``--processes`` processes (spawned, each opening the vault as the CLI does) runs
``--ops`` operations in a cycle of add, rotate and remove on services of its own, timing each
whole operation (the vault call, waits for the write lock included). A failure is any exception
an operation raised; the figures printed are the operations done, the failures by type, and the
write latency p50 / p99 / max over every operation of every process.

A reader process meanwhile takes a snapshot in a loop, as the proxy does per request, and
counts the snapshots that failed or lacked a service that was never removed (``keep``).

Run: ``.venv/bin/python -m bench.vault_writers [--processes 8] [--ops 1000]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

from clavis_mcp.vault import Service, Vault, parse_header_template, parse_hosts, validate_secret

SPAWN = multiprocessing.get_context("spawn")


def service(name: str) -> Service:
    return Service(name, parse_header_template("Authorization: Bearer {secret}"), parse_hosts([f"{name}.example.test"]))


def secret(n: int) -> str:
    return validate_secret(f"sk-bench-writer-{n:012d}-0123456789").reveal()


def writer(home: str, index: int, ops: int, results: Connection) -> None:
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    with Vault.open(Path(home)) as vault:
        for op in range(ops):
            name = f"w{index}-s{op // 3}"
            started = time.perf_counter()
            try:
                match op % 3:
                    case 0:
                        vault.add_service(service(name), validate_secret(secret(op)))
                    case 1:
                        vault.rotate_secret(name, validate_secret(secret(op)))
                    case _:
                        vault.remove_service(name)
            except Exception as exc:  # noqa: BLE001 - counted, by type: that is the figure
                failures[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
            latencies.append(time.perf_counter() - started)
    results.send((latencies, dict(failures)))


def reader(home: str, stop: Connection, results: Connection) -> None:
    snapshots = failed = missing = 0
    with Vault.open(Path(home)) as vault:
        while not stop.poll():
            try:
                snapshot = vault.snapshot()
                if "keep" not in snapshot.secrets:
                    missing += 1
            except Exception:  # noqa: BLE001 - counted
                failed += 1
            snapshots += 1
    results.send((snapshots, failed, missing))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(processes: int, ops: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with Vault.create(home) as vault:
            vault.add_service(service("keep"), validate_secret(secret(0)))
        receivers, workers = [], []
        for index in range(processes):
            receive, send = SPAWN.Pipe(duplex=False)
            receivers.append(receive)
            workers.append(SPAWN.Process(target=writer, args=(str(home), index, ops, send)))
        stop_receive, stop_send = SPAWN.Pipe(duplex=False)
        read_receive, read_send = SPAWN.Pipe(duplex=False)
        watcher = SPAWN.Process(target=reader, args=(str(home), stop_receive, read_send))
        watcher.start()
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        for receive in receivers:
            lat, failed = receive.recv()
            latencies.extend(lat)
            failures.update(failed)
        wall = time.perf_counter() - started
        for worker in workers:
            worker.join()
        stop_send.send(True)
        snapshots, snapshot_failures, missing = read_receive.recv()
        watcher.join()
    print(f"{processes} processes x {ops} add/rotate/remove: {len(latencies)} operations in {wall:.1f} s")
    print(f"  failures: {sum(failures.values())}" + "".join(f"\n    {n} x {kind}" for kind, n in failures.items()))
    print(
        f"  write latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(f"  reader: {snapshots} snapshots, {snapshot_failures} failed, {missing} without an untouched service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args()
    run(args.processes, args.ops)


if __name__ == "__main__":
    main()
