"""Section 5: the costs that grow with data: redaction, the audit log, the vault.

Each is measured next to a floor in the same run: redaction against a plain
``bytes.replace`` of the five literal values, audit appends against raw ``os.write`` of
lines of the same size, the audit query against a raw scan of the file, and the vault with
10,000 services against the same operations on 100.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clavis_mcp.vault import AuditLog, Service, Vault, parse_header_template, parse_hosts, validate_secret
from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import AUDIT_FILE
from clavis_mcp.vault.redaction.redactor import HyperscanScanner, Redactor, StreamRedactor, TrieScanner

from . import audit_query
from .fixture import SERVICE, World
from .stats import Row, Spread, Target

BODY_MIB = 16
SECRETS = 5
STREAM_CHUNK = 16 * 1024  # a typical read from a streamed response
APPENDS = 300
QUERY_LIMIT = 50  # what `clavis-mcp audit` shows by default
AUDIT_RECORDS = 1_000_000
SERVICES = 10_000
SMALL_VAULT = 100
LOOKUPS = 2000
BUDGET_SECONDS = 1.0  # per figure and round, so a slow path cannot stretch the run
ADDS_AT_SCALE = 10


def _per_call[T](fn: Callable[[T], object], arguments: list[T], budget: float = BUDGET_SECONDS) -> float:
    """Mean seconds per call over ``arguments``, stopping early once ``budget`` seconds are spent."""
    started = time.perf_counter()
    calls = 0
    for argument in arguments:
        fn(argument)
        calls += 1
        if time.perf_counter() - started > budget:
            break
    return (time.perf_counter() - started) / calls


def _lookup(vault: Vault, host: str) -> None:
    """What the proxy does per request: the current snapshot, then the owner of the destination."""
    if vault.snapshot().owner_of(host, 443, "https") is None:
        raise RuntimeError(f"no owner found for {host}")


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- redaction -------------------------------------------------------------------------------


def _body_with_secrets(values: list[str]) -> bytes:
    rng = random.Random(8)
    line = b'{"id":"evt_0001","object":"event","data":{"text":"lorem ipsum dolor sit amet, consectetur"}}\n'
    body = bytearray((line * (BODY_MIB * 1024 * 1024 // len(line) + 1))[: BODY_MIB * 1024 * 1024])
    for value in values:
        at = rng.randrange(len(body) - 100)
        body[at : at + len(value)] = value.encode()
    return bytes(body)


def redaction(rounds: int) -> tuple[list[Row], list[Target]]:
    values = [f"sk-live-{i}{'0123456789abcdef' * 3}"[:48] for i in range(SECRETS)]
    redactor = Redactor(SERVICE, [validate_secret(v) for v in values])  # hyperscan where it is installed
    trie = Redactor(SERVICE, [validate_secret(v) for v in values], scanner=TrieScanner)  # the fallback
    engine = "hyperscan" if isinstance(redactor.scanner, HyperscanScanner) else "re trie"
    body = _body_with_secrets(values)
    marker = f"[REDACTED:{SERVICE}]".encode()

    def literal_replace() -> bytes:
        data = body
        for value in values:
            data = data.replace(value.encode(), marker)
        return data

    def streamed() -> bytes:
        scrubber = StreamRedactor(redactor)
        parts = [scrubber.feed(body[i : i + STREAM_CHUNK]) for i in range(0, len(body), STREAM_CHUNK)]
        return b"".join([*parts, scrubber.flush()])

    whole, stream, whole_re, floor = [], [], [], []
    for _ in range(rounds):
        for clean in (redactor.redact(body)[0], streamed(), trie.redact(body)[0]):
            if clean.count(redactor.marker) < SECRETS or any(v.encode() in clean for v in values):
                raise RuntimeError("redaction missed a secret")
        whole.append(len(body) / _timed(lambda: redactor.redact(body)) / 1e6)
        stream.append(len(body) / _timed(streamed) / 1e6)
        whole_re.append(len(body) / _timed(lambda: trie.redact(body)) / 1e6)
        floor.append(len(body) / _timed(literal_replace) / 1e6)
    section = "5. redaction, audit log, vault"
    case = f"redact a {BODY_MIB} MiB body, {SECRETS} secrets"
    baseline = f"bytes.replace × {SECRETS} literals"
    rows = [
        Row.paired(
            section, case, "MB/s", (f"Redactor.redact (whole body, all encodings, {engine})", whole), (baseline, floor)
        ),
        Row.paired(
            section,
            case,
            "MB/s",
            (f"StreamRedactor.feed ({STREAM_CHUNK // 1024} KiB chunks, {engine})", stream),
            (baseline, floor),
        ),
        Row.paired(
            section, case, "MB/s", ("Redactor.redact (whole body, all encodings, re trie)", whole_re), (baseline, floor)
        ),
    ]
    targets = []
    for row, how in zip(rows[:2], ("whole body", "streamed"), strict=True):
        rate = row.value.median
        targets.append(
            Target(f"redaction throughput, {SECRETS} secrets, {how}", f"{rate:.0f} MB/s", "≥ 200 MB/s", rate >= 200)
        )
    return rows, targets


# -- audit log -------------------------------------------------------------------------------


def _record(i: int) -> dict[str, object]:
    return dict(
        source="mcp", service=f"svc-{i % 50:02d}", method="GET", scheme="https", host="api.example.com", port=443,
        path="/v1/models?limit=", status=200, bytes=1234, duration_ms=12.5, decision="injected", redactions=0,
    )  # fmt: skip


def _raw_writes(path: Path, line: bytes, count: int, durable: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(fd, line)
            if durable:
                os.fsync(fd)
    finally:
        os.close(fd)


def _query(files: LogFiles, where: AuditFilter) -> int:
    """What `clavis-mcp audit --service S --since T` does: catch the index up, count, read the newest 50."""
    index = AuditIndex(files)
    try:
        index.refresh()
        total = index.count(where)
        list(index.read(index.select(where, QUERY_LIMIT)))
    finally:
        index.close()
    return total


def audit(world: World, rounds: int, scale: float, progress: Callable[[str], None]) -> tuple[list[Row], list[Target]]:
    section = "5. redaction, audit log, vault"
    folder = world.root / "audit-bench"
    folder.mkdir()
    vault = Vault.create(folder / "vault")
    try:
        appends = max(50, int(APPENDS * scale))
        ours, plain, durable = [], [], []
        for round_ in range(rounds):
            # a vault of its own per round: the vault keeps its log's high-water mark, so a second
            # log of the same vault would read as the first one cut (and refuse every append)
            round_vault = Vault.create(folder / f"vault-{round_}")
            try:
                log = AuditLog.for_vault(round_vault, folder / f"append-{round_}.jsonl")
                ours.append(appends / _timed(lambda log=log: [log.append(**_record(i)) for i in range(appends)]))
            finally:
                round_vault.close()
            line = log.path.read_bytes().splitlines(keepends=True)[0]
            plain.append(appends / _timed(lambda r=round_, x=line: _raw_writes(folder / f"raw-{r}", x, appends, False)))
            durable.append(
                appends / _timed(lambda r=round_, x=line: _raw_writes(folder / f"sync-{r}", x, appends, True))
            )
        case = f"append {appends} records"
        rows = [
            Row.paired(section, case, "records/s", ("AuditLog.append", ours), ("os.write of the same lines", plain)),
            Row.paired(section, case, "records/s", ("AuditLog.append", ours), ("os.write + fsync per line", durable)),
        ]
        records = max(10_000, int(AUDIT_RECORDS * scale))
        progress(f"audit: writing a chained log of {records:,} records (bench.audit_query.build_log)")
        home = folder / "vault"
        audit_query.build_log(home, vault, records)
    finally:
        vault.close()
    files = LogFiles(home / AUDIT_FILE)
    service = audit_query.SERVICES[3]
    needle = f'"service":"{service}"'.encode()

    def raw_scan() -> int:
        return sum(path.read_bytes().count(needle) for _, path in files.numbered() if path.exists())

    where = AuditFilter(service=service, since=datetime.now(UTC) - timedelta(hours=24))
    progress("audit: first query (builds the index)")
    cold = _timed(lambda: _query(files, where))
    if _query(files, AuditFilter(service=service)) != raw_scan():
        raise RuntimeError("the audit index and a raw scan of the log disagree")
    query_s, scan_s = [], []
    for _ in range(rounds):
        query_s.append(_timed(lambda: _query(files, where)))
        scan_s.append(_timed(raw_scan))
    case = f"query {records:,} records: one service, last 24 h (as `clavis-mcp audit`)"
    rows.append(Row.paired(section, case, "s", ("indexed query", query_s), ("raw read + bytes.count", scan_s)))
    rows.append(
        Row.paired(
            section,
            "first query: index built from scratch",
            "s",
            ("indexed query", [cold]),
            ("raw read + bytes.count", [Spread.of(scan_s).median]),
        )
    )
    query_median = Spread.of(query_s).median
    name = f"audit query on {records:,} records"
    return rows, [Target(name, f"{query_median:.3f} s", "< 0.5 s", query_median < 0.5)]


# -- vault -----------------------------------------------------------------------------------


def _service(i: int) -> Service:
    return Service(
        name=f"svc-{i:05d}",
        auth=parse_header_template("Authorization: Bearer {secret}"),
        hosts=parse_hosts([f"api{i}.example.com"]),
        created_at=time.time(),
    )


def _fill(vault: Vault, count: int) -> float:
    """Seconds to add ``count`` services in one ``add_services`` call (one transaction)."""
    entries = [(_service(i), validate_secret(f"sk-{i:040d}")) for i in range(count)]
    return _timed(lambda: vault.add_services(entries))


def vault_scale(world: World, rounds: int, progress: Callable[[str], None]) -> tuple[list[Row], list[Target]]:
    section = "5. redaction, audit log, vault"
    progress(f"vault: {SMALL_VAULT} and {SERVICES} services")
    small, large = Vault.create(world.root / "vault-small"), Vault.create(world.root / "vault-large")
    try:
        fill_small = _fill(small, SMALL_VAULT)
        progress(f"vault: adding {SERVICES:,} services in one add_services call")
        fill_large = _fill(large, SERVICES)
        rng = random.Random(10)
        figures: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
        for _ in range(rounds):
            for size, vault, n in (("small", small, SMALL_VAULT), ("large", large, SERVICES)):
                found = figures[size]
                found.setdefault("list", []).append(_timed(vault.list_services) * 1000)
                hosts = [f"api{rng.randrange(n)}.example.com" for _ in range(LOOKUPS)]
                vault.snapshot()
                found.setdefault("lookup", []).append(_per_call(functools.partial(_lookup, vault), hosts) * 1000)
        adds = []
        for i in range(ADDS_AT_SCALE):
            service = _service(SERVICES + i)
            adds.append(_timed(lambda s=service, i=i: large.add_service(s, validate_secret(f"sk-new-{i:036d}"))) * 1000)
        small_adds = []
        for i in range(ADDS_AT_SCALE):
            service = _service(SMALL_VAULT + i)
            small_adds.append(
                _timed(lambda s=service, i=i: small.add_service(s, validate_secret(f"sk-new-{i:036d}"))) * 1000
            )
    finally:
        small.close()
        large.close()
    big, little = f"{SERVICES:,} services", f"{SMALL_VAULT} services"
    rows = [
        Row.paired(
            section, "vault.list_services()", "ms", (big, figures["large"]["list"]), (little, figures["small"]["list"])
        ),
        Row.paired(
            section,
            "vault.snapshot().owner_of(host)",
            "ms per lookup",
            (big, figures["large"]["lookup"]),
            (little, figures["small"]["lookup"]),
        ),  # fmt: skip
        Row.paired(section, f"vault.add_service() × {ADDS_AT_SCALE}", "ms per add", (big, adds), (little, small_adds)),
        Row.paired(
            section, "vault.add_services(all) in one call (once)", "s", (big, [fill_large]), (little, [fill_small])
        ),
    ]
    lookup = rows[1].value.median
    return rows, [Target(f"vault lookup with {SERVICES:,} services", f"{lookup:.3f} ms", "< 1 ms", lookup < 1)]


async def measure(
    world: World, rounds: int, scale: float, progress: Callable[[str], None]
) -> tuple[list[Row], list[Target]]:
    progress("redaction")
    rows, targets = redaction(rounds)
    for part_rows, part_targets in (audit(world, rounds, scale, progress), vault_scale(world, rounds, progress)):
        rows += part_rows
        targets += part_targets
    return rows, targets
