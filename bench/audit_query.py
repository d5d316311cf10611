"""How fast `clavis-mcp audit` answers on a large log, against a plain scan measured in the same run.

Builds a real vault and a genuine chained log of ``--records`` records (default 1,000,000)
spread over 30 days across 20 services and 10 agents, rotated at the production size limit,
then times, each as the median of ``--rounds`` runs:

- baseline: a linear scan of every file, parsing each line and filtering (what a reader
  without the index does), and a byte-prefiltered scan (parse only lines naming the service);
- the index: first catch-up over the whole log (paid once), then one service over the last
  24 hours (every match, and the newest 50 for the table), stats over 7 days, and the
  catch-up after 1,000 real appends;
- the cost of one real append (chain, fsync, vault checkpoint) and of `audit verify`.

Run: ``.venv/bin/python -m bench.audit_query [--records N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit.anchor import VaultAnchor
from clavis_mcp.vault.audit.chain import Link, encode, link_of, seal
from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import KEEP_EVERY, AuditIndex, IndexKeeper
from clavis_mcp.vault.audit.log import AUDIT_FILE, DEFAULT_MAX_BYTES

SERVICES = [f"service-{n:02d}" for n in range(20)]
AGENTS = ["mcp", *(f"agent-{n}" for n in range(9))]
SPAN = timedelta(days=30)


def build_log(home: Path, vault: Vault, count: int) -> None:
    """A genuine chain, written directly (the append path is timed separately)."""
    anchor = VaultAnchor(vault, LogFiles(home / AUDIT_FILE).lock_path)
    start = datetime.now(UTC) - SPAN
    step = SPAN / count
    live = home / AUDIT_FILE
    previous: Link | None = None
    number, size = 1, 0
    handle = live.open("wb")
    for i in range(count):
        service = SERVICES[(i * 7) % len(SERVICES)]
        refused = i % 50 == 0
        fields = {
            "id": f"{i:016x}",
            "time": (start + step * i).isoformat(timespec="milliseconds"),
            "source": AGENTS[(i * 3) % len(AGENTS)],
            "service": service,
            "method": "POST" if i % 4 == 0 else "GET",
            "scheme": "https",
            "host": f"api.{service}.example",
            "port": 443,
            "path": "/v1/chat/completions" if i % 4 == 0 else "/v1/models?limit=",
            "status": 403 if refused else (429 if i % 97 == 0 else 200),
            "bytes": 1200 + i % 800,
            "duration_ms": round(80 + (i % 500) / 3, 2),
            "decision": "refused" if refused else "injected",
            "redactions": i % 2,
        }
        sealed = seal(anchor.key, previous, fields)
        line = encode(sealed)
        if size and size + len(line) > DEFAULT_MAX_BYTES:
            handle.close()
            os.rename(live, home / f"{AUDIT_FILE}.{number}")
            number, size = number + 1, 0
            handle = live.open("wb")
        handle.write(line)
        size += len(line)
        previous = link_of(sealed)
    handle.close()
    assert previous is not None
    anchor.advance(previous)


def median_time(fn: Callable[[], object], rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clavis-audit-bench-") as folder:
        home = Path(folder) / "home"
        vault = Vault.create(home)
        log = AuditLog.for_vault(vault)
        started = time.perf_counter()
        build_log(home, vault, args.records)
        files = log.files.numbered()
        size = sum(p.stat().st_size for _, p in files if p.exists())
        print(f"log: {args.records:,} records, {len(files)} files, {size / 2**20:.0f} MiB "
              f"(built in {time.perf_counter() - started:.1f} s)")  # fmt: skip

        target = SERVICES[3]
        now = datetime.now(UTC)
        where = AuditFilter(service=target, since=now - timedelta(hours=24))
        week = AuditFilter(since=now - timedelta(days=7))
        needle = f'"service":"{target}"'.encode()

        def linear_scan() -> int:
            return sum(1 for r in log.records() if where.matches(r))

        def prefiltered_scan() -> int:
            found = 0
            for number, _ in log.files.numbered():
                handle = log.files.open(number)
                if handle is None:
                    continue
                with handle:
                    for line in handle:
                        if needle in line and where.matches(json.loads(line)):
                            found += 1
            return found

        index = AuditIndex(log.files)
        started = time.perf_counter()
        index.refresh()
        first_catch_up = time.perf_counter() - started

        def indexed_all() -> int:
            index.refresh()
            return sum(1 for _ in index.read(index.select(where, None)))

        def indexed_table() -> int:
            index.refresh()
            return index.count(where) + sum(1 for _ in index.read(index.select(where, 50)))

        def indexed_stats() -> int:
            index.refresh()
            return len(index.stats(week)["service"])

        scan_s, expected = median_time(linear_scan, max(1, args.rounds // 2))
        prefilter_s, prefiltered = median_time(prefiltered_scan, max(1, args.rounds // 2))
        all_s, matched = median_time(indexed_all, args.rounds)
        table_s, _ = median_time(indexed_table, args.rounds)
        stats_s, _ = median_time(indexed_stats, args.rounds)
        assert matched == expected == prefiltered, (matched, expected, prefiltered)

        def append_many(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):
                log.append(source="mcp", service=target, method="GET", scheme="https", host="api.example",
                           port=443, path="/v1/models", status=200, decision="injected", redactions=0)  # fmt: skip
            return (time.perf_counter() - started) / count

        # The append with and without the background index keeper, interleaved (same run, same load).
        # The keeper here catches up every 0.1 s, not every KEEP_EVERY, so that it runs several
        # times during each timed half: its per-record cost, with its fixed cost 20x more often.
        appends, half = 1000, 4000
        with_keeper, without_keeper = [], []
        for _ in range(args.rounds):
            log._index = IndexKeeper(log.files, every=0.1)  # noqa: SLF001  (a fresh, running keeper)
            with_keeper.append(append_many(half))
            log._index.close()  # noqa: SLF001  (a closed keeper: the append only sets a flag)
            index.refresh()  # what the keeper had not reached yet, outside the timed halves
            without_keeper.append(append_many(half))
            index.refresh()
        append_s, append_bare_s = statistics.median(with_keeper), statistics.median(without_keeper)
        log._index.close()  # noqa: SLF001
        append_many(appends)
        started = time.perf_counter()
        index.refresh()
        catch_up_s = time.perf_counter() - started  # no keeper ran during these appends
        log._index = IndexKeeper(log.files)  # noqa: SLF001
        append_many(appends)
        time.sleep(2 * KEEP_EVERY + 0.5)  # the keeper's catch-up runs meanwhile
        started = time.perf_counter()
        index.refresh()
        kept_catch_up_s = time.perf_counter() - started
        verify_s, report = median_time(log.verify, 1)
        index.close()
        vault.close()

    print(f"query: service {target!r}, last 24 h -> {matched:,} records")
    print(f"  baseline linear scan (parse every line)      {scan_s * 1000:9.1f} ms   1.00x")
    print(f"  baseline byte-prefiltered scan               {prefilter_s * 1000:9.1f} ms   "
          f"{scan_s / prefilter_s:5.1f}x faster than the linear scan")  # fmt: skip
    for label, seconds in (
        ("index: every match, read back from the log", all_s),
        ("index: table (count + newest 50)", table_s),
        ("index: stats over 7 days (4 dimensions)", stats_s),
    ):
        print(f"  {label:<45}{seconds * 1000:9.1f} ms {scan_s / seconds:7.0f}x faster than the linear scan")
    print(f"index: first catch-up over a log written without the keeper {first_catch_up:.1f} s (once); "
          f"after {appends} appends without it {catch_up_s * 1000:.1f} ms")  # fmt: skip
    print(f"index: a review's catch-up {2 * KEEP_EVERY + 0.5:.1f} s after {appends} appends "
          f"with the keeper: {kept_catch_up_s * 1000:.1f} ms")  # fmt: skip
    print(f"append: {append_s * 1e6:.0f} us per record with the index keeper (catching up every 0.1 s), "
          f"{append_bare_s * 1e6:.0f} us without (median of {args.rounds} interleaved rounds of {half:,}; "
          "HMAC chain, fsync, sealed checkpoint in the vault)")  # fmt: skip
    print(f"verify: {verify_s:.1f} s for {getattr(report, 'count', 0):,} records -> {report.summary()}")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
