"""Section 5: cost as work grows, as curves (issue 18.4), written as PNGs to docs/img/.

Four axes, each measured in the same run as the tables:

- **concurrency** (1 … 256 clients, small JSON): per-request p50 and throughput, direct, MITM and
  base-URL mode against the same clavis proxy;
- **body size** (1 KiB … 64 MiB, written 64 KiB at a time by the upstream and streamed on):
  milliseconds per request, the same three ways;
- **services in the vault** (10, 1,000, 10,000; ``--scale`` shrinks the top): adding one more
  service, ``list_services``, and a small-JSON request through each mode with that many services;
- **secrets the redactor looks for** (1, 100, 1,000): scrubbing one small JSON body and 1 MiB,
  in process (the redactor is the whole per-secret cost of a response).

Every point is a median over the rounds; the rows pair each point with the smallest one of its
axis (or with direct), so the tables say how far from flat a curve is.
"""

from __future__ import annotations

import secrets as random_secrets
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from . import load
from .fixture import PROXY_TOKEN, PROXY_USER, ROOT, SECRET, SERVICE, World
from .stats import Row, Target
from .upstream import BYTES, SMALL

IMAGES = ROOT / "docs" / "img"
FIGURES: list[tuple[str, str]] = []  # (title, path relative to docs/) of the PNGs this run wrote
MODES = ("direct", "MITM", "base-URL")
CONCURRENCY = (1, 4, 16, 64, 256)
SIZES = (1 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20)
SERVICE_COUNTS = (10, 1000, 10000)
SECRET_COUNTS = (1, 100, 1000)
CURVES = "5. cost as work grows"
CLOCK: list[Callable[[], float]] = []  # the CPU clock of the clavis proxy process under test


def _targets(world: World, proxy_port: int, path: str) -> dict[str, load.Target]:
    redacted = f"[REDACTED:{SERVICE}]".encode()
    proxy = httpx.Proxy(f"http://127.0.0.1:{proxy_port}", auth=(PROXY_USER, PROXY_TOKEN))
    return {
        "direct": load.Target(
            world.base_url + path, world.upstream_trust(), None, {"Authorization": f"Bearer {SECRET}"}, SECRET.encode()
        ),
        "MITM": load.Target(world.base_url + path, world.proxy_trust(), proxy, {}, redacted),
        "base-URL": load.Target(
            f"http://127.0.0.1:{proxy_port}/s/{SERVICE}{path}",
            world.proxy_trust(),
            None,
            {"Authorization": f"Bearer {PROXY_TOKEN}"},
            redacted,
        ),
    }


def _label(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,}"


async def _load_curve(
    world: World,
    port: int,
    points: Sequence[int],
    rounds: int,
    how: Callable[[int], tuple[str, int, int]],
    progress: Callable[[str], None],
    what: str,
) -> dict[str, dict[int, list[load.LoadRun]]]:
    """For each point, ``how(point)`` gives (path, requests, concurrency); every mode in every round."""
    runs: dict[str, dict[int, list[load.LoadRun]]] = {mode: {} for mode in MODES}
    for round_ in range(rounds):
        progress(f"curves: {what}, round {round_ + 1}/{rounds}")
        for point in points:
            path, count, concurrency = how(point)
            targets = _targets(world, port, path)
            for mode in MODES:
                clock = None if mode == "direct" else CLOCK[0]
                runs[mode].setdefault(point, []).append(await load.run(targets[mode], count, concurrency, clock))
    return runs


def _load_rows(
    section: str, runs: dict[str, dict[int, list[load.LoadRun]]], points: Sequence[int], unit: str
) -> list[Row]:
    rows = []
    for point in points:
        case = f"{_label(point)} {unit}"
        metrics = (("p50 ms", lambda r: r.p(50)), ("req/s", lambda r: r.rate), ("proxy CPU µs/req", lambda r: r.cpu_us))
        for metric, get in metrics:
            values = {mode: [get(run) for run in runs[mode][point]] for mode in MODES}
            for subject, baseline in (("MITM", "direct"), ("base-URL", "direct"), ("base-URL", "MITM")):
                if metric.startswith("proxy CPU") and baseline == "direct":
                    continue
                rows.append(Row.paired(section, case, metric, (subject, values[subject]), (baseline, values[baseline])))
    return rows


def _plot(name: str, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list[int], list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"{name}.png"
    figure.savefig(path)
    plt.close(figure)
    FIGURES.append((title, str(Path("img") / path.name)))


def _medians(runs: dict[int, list[load.LoadRun]], get: Callable[[load.LoadRun], float]) -> list[float]:
    return [statistics.median(get(run) for run in runs[point]) for point in sorted(runs)]


async def concurrency_curve(world: World, port: int, rounds: int, scale: float, progress: Callable[[str], None]):
    def how(clients: int) -> tuple[str, int, int]:
        return SMALL, max(clients, int(400 * scale)), clients

    runs = await _load_curve(world, port, CONCURRENCY, rounds, how, progress, "concurrency")
    _plot(
        "curve-concurrency",
        "Small JSON: p50 per request against clients",
        "concurrent clients",
        "p50 ms",
        {mode: (list(CONCURRENCY), _medians(runs[mode], lambda r: r.p(50))) for mode in MODES},
    )
    _plot(
        "curve-concurrency-cpu",
        "Small JSON: proxy CPU per request against clients",
        "concurrent clients",
        "proxy CPU µs per request",
        {mode: (list(CONCURRENCY), _medians(runs[mode], lambda r: r.cpu_us)) for mode in ("MITM", "base-URL")},
    )
    return _load_rows(f"{CURVES}: concurrency (small JSON)", runs, CONCURRENCY, "clients")


async def size_curve(world: World, port: int, rounds: int, scale: float, progress: Callable[[str], None]):
    def how(size: int) -> tuple[str, int, int]:
        return f"{BYTES}{size}", max(2, int(min(200, (256 << 20) // size) * scale)), 1

    runs = await _load_curve(world, port, SIZES, rounds, how, progress, "body size")
    _plot(
        "curve-body-size",
        "Response body: ms per request against size",
        "bytes",
        "ms per request",
        {mode: (list(SIZES), _medians(runs[mode], lambda r: r.p(50))) for mode in MODES},
    )
    _plot(
        "curve-body-size-cpu",
        "Response body: proxy CPU per request against size",
        "bytes",
        "proxy CPU µs per request",
        {mode: (list(SIZES), _medians(runs[mode], lambda r: r.cpu_us)) for mode in ("MITM", "base-URL")},
    )
    return _load_rows(f"{CURVES}: body size (sequential, streamed)", runs, SIZES, "body")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


async def services_curve(world: World, port: int, rounds: int, scale: float, progress: Callable[[str], None]):
    from clavis_mcp.clavis_cli.runtime import open_runtime
    from clavis_mcp.vault import Service, parse_header_template, parse_hosts, validate_secret

    counts = sorted({max(10, int(n * scale)) for n in SERVICE_COUNTS})
    auth = parse_header_template("Authorization: Bearer {secret}")

    def make(i: int) -> Service:
        return Service(name=f"curve-{i}", auth=auth, hosts=parse_hosts([f"s{i}.curve.example"]), created_at=time.time())

    add_ms: dict[int, list[float]] = {}
    list_ms: dict[int, list[float]] = {}
    runs: dict[str, dict[int, list[load.LoadRun]]] = {mode: {} for mode in MODES}
    targets = _targets(world, port, SMALL)
    with open_runtime() as runtime:
        vault = runtime.vault
        present = 1  # the bench service
        for count in counts:
            progress(f"curves: {count} services")
            missing = count - present - 1  # one is left for the timed add
            if missing > 0:
                batch = [
                    (make(i), validate_secret(f"sk-curve-{i}-{random_secrets.token_hex(8)}"))
                    for i in range(present, present + missing)
                ]
                vault.add_services(batch)
            timed = present + max(missing, 0)
            service, secret = make(timed), validate_secret(f"sk-curve-{timed}-{random_secrets.token_hex(8)}")
            add_ms[count] = [_timed(lambda: vault.add_service(service, secret))]  # noqa: B023 (called at once)
            present = timed + 1
            list_ms[count] = [_timed(vault.list_services) for _ in range(rounds)]
            for mode in MODES:
                runs[mode][count] = [await load.run(targets[mode], max(1, int(200 * scale)), 1) for _ in range(rounds)]
    rows = []
    section = f"{CURVES}: services in the vault"
    for count in counts:
        case = f"{count:,} services"
        rows.append(
            Row.paired(section, case, "add one ms", ("vault", add_ms[count]), ("10 services", add_ms[counts[0]]))
        )
        rows.append(
            Row.paired(section, case, "list ms", ("vault", list_ms[count]), ("10 services", list_ms[counts[0]]))
        )
        for mode in ("MITM", "base-URL"):
            values = [r.p(50) for r in runs[mode][count]]
            first = [r.p(50) for r in runs[mode][counts[0]]]
            rows.append(Row.paired(section, case, "request p50 ms", (mode, values), ("10 services", first)))
    _plot(
        "curve-services",
        "Cost against services in the vault",
        "services",
        "ms",
        {
            "add one service": (counts, [add_ms[c][0] for c in counts]),
            "list_services": (counts, [statistics.median(list_ms[c]) for c in counts]),
            **{
                f"request p50, {mode}": (counts, _medians(runs[mode], lambda r: r.p(50)))
                for mode in ("MITM", "base-URL")
            },
        },
    )
    top = counts[-1]
    limits = [
        Target(f"add one service at {top:,} services", f"{add_ms[top][0]:.1f} ms", "< 5 ms", add_ms[top][0] < 5),
        Target(
            f"list_services at {top:,} services",
            f"{statistics.median(list_ms[top]):.1f} ms",
            "< 25 ms",
            statistics.median(list_ms[top]) < 25,
        ),
    ]
    return rows, limits


def secrets_curve(rounds: int, progress: Callable[[str], None]) -> list[Row]:
    from clavis_mcp.vault import validate_secret
    from clavis_mcp.vault.redaction.redactor import Redactor
    from clavis_mcp.vault.redaction.views import redact_decoded

    from .upstream import Upstream, small_body

    progress("curves: secrets the redactor looks for")
    bodies = {"small JSON": small_body(f"Bearer {SECRET}"), "1 MiB": Upstream().responses("/large", SECRET)[1][0]}
    times: dict[str, dict[int, list[float]]] = {name: {} for name in bodies}
    for count in SECRET_COUNTS:
        values = [validate_secret(SECRET)] + [
            validate_secret(f"sk-{random_secrets.token_urlsafe(24)}") for _ in range(count - 1)
        ]
        redactor = Redactor(SERVICE, values)
        for name, body in bodies.items():
            repeat = 200 if len(body) < 4096 else 5
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(repeat):
                    redact_decoded(redactor, body, "utf-8")
                samples.append((time.perf_counter() - started) * 1e6 / repeat)
            times[name][count] = samples
    section = f"{CURVES}: secrets the redactor looks for (in process)"
    rows = [
        Row.paired(
            section,
            f"{count:,} secret{'s' * (count != 1)}",
            f"µs per {name} body",
            ("redactor", times[name][count]),
            ("1 secret", times[name][1]),
        )
        for name in bodies
        for count in SECRET_COUNTS
    ]
    _plot(
        "curve-secrets",
        "Redacting one response against secrets looked for",
        "secrets",
        "µs per response",
        {name: (list(SECRET_COUNTS), [statistics.median(times[name][c]) for c in SECRET_COUNTS]) for name in bodies},
    )
    return rows


async def measure(
    world: World, rounds: int, scale: float, progress: Callable[[str], None]
) -> tuple[list[Row], list[Target]]:
    child = world.child("bench.proxy_host", "clavis")
    FIGURES.clear()
    CLOCK[:] = [load.cpu_clock(child.process.pid)]
    try:
        rows = await concurrency_curve(world, child.port, rounds, scale, progress)
        rows += await size_curve(world, child.port, rounds, scale, progress)
        service_rows, targets = await services_curve(world, child.port, rounds, scale, progress)
        rows += service_rows
    finally:
        child.stop()
    rows += secrets_curve(rounds, progress)
    return rows, targets
