"""``python -m bench.faults``: the fault figures of issue 20 that the proxy and the audit log own.

Each figure is measured on real parts (the embedded proxy, a loopback HTTPS upstream, a vault
on a small tmpfs of its own): requests sent unrecorded with the disk full, a torn tail repaired,
the time a dead first address costs, the time to a 504 from a hung upstream, and the memory a
refused multi-GB upload takes. Root is needed for the tmpfs; without it that figure is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.proxy.body_limit import RequestBodyLimit
from clavis_mcp.proxy.upstream_timeout import UpstreamTimeout
from clavis_mcp.vault import (
    AuditLog,
    AuditWriteError,
    Service,
    Vault,
    parse_header_template,
    parse_hosts,
    validate_secret,
)
from clavis_mcp.vault.audit import files as audit_files
from clavis_mcp.vault.dialing import first_reachable
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream, write_ca

SECRET = "sk-faults-0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # made up
USER, TOKEN = "bench", "bench-proxy-token-0123456789abcdef"
AFTER_FULL = 200  # requests sent once the disk is full


def service(name: str, host: str) -> Service:
    auth = parse_header_template("Authorization: Bearer {secret}")
    return Service(name=name, auth=auth, hosts=parse_hosts([host]), created_at=time.time(), local=True)


def client(proxy: EmbeddedProxy, home: Path) -> httpx.AsyncClient:
    trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
    return httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=(USER, TOKEN)), verify=trust, trust_env=False,
                             timeout=30)  # fmt: skip


async def proxy_for(vault: Vault, audit: AuditLog, home: Path, *addons: object) -> EmbeddedProxy:
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), ProxyConfig(tokens=lambda: {USER: TOKEN},
                                                                              extra_addons=addons))  # fmt: skip
    await proxy.start()
    return proxy


def fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\0" * 65536
    try:
        while block:
            try:
                os.write(fd, block)
            except OSError:
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


async def disk_full(ca: trustme.CA, work: Path) -> None:
    disk = work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        print(f"disk full: skipped (a small tmpfs needs root: {mounted.stderr.strip()})")
        return
    try:
        home = disk / "home"
        vault = Vault.create(home)
        with EchoUpstream.start(ca) as upstream:
            vault.add_service(service("echo", f"127.0.0.1:{upstream.port}"), validate_secret(SECRET))
            audit = AuditLog.for_vault(vault)
            proxy = await proxy_for(vault, audit, home)
            url = f"https://127.0.0.1:{upstream.port}/v1/x"
            try:
                async with client(proxy, home) as c:
                    await c.get(url)
                    fill(disk)
                    before = len(upstream.received)
                    statuses = [(await c.post(url, content=b"{}")).status_code for _ in range(AFTER_FULL)]
            finally:
                await proxy.stop()
            reached = len(upstream.received) - before
            lines = (home / "audit.jsonl").read_bytes().splitlines()
            recorded = sum(json.loads(line).get("decision") == "injected" for line in lines) - 1
        vault.close()
        print(f"disk full: {AFTER_FULL} requests after the disk filled: {reached} reached the upstream, "
              f"{recorded} of them recorded, {statuses.count(503)} refused before egress (503), "
              f"{statuses.count(502)} withheld after egress (502); sent unrecorded = {reached - recorded}")  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def torn_tail(work: Path) -> None:
    home = work / "torn"
    vault = Vault.create(home)
    audit = AuditLog.for_vault(vault)
    for _ in range(1000):
        audit.append(source="bench", decision="injected")
    real, calls = audit_files.os.write, []

    def half_then_full(fd: int, data: bytes) -> int:  # a short write, then the disk is full
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(fd, data[: len(data) // 2])

    audit_files.os.write = half_then_full  # type: ignore[assignment]
    try:
        audit.append(source="bench", decision="injected")
    except AuditWriteError:
        pass
    finally:
        audit_files.os.write = real  # type: ignore[assignment]
    pending = audit.verify()
    started = time.perf_counter()
    audit.append(source="bench", decision="injected")
    took = (time.perf_counter() - started) * 1000
    report = audit.verify()
    vault.close()
    print(f"torn tail: before the next append verify says {'OK' if pending.ok else 'BROKEN'} (waiting for repair); "
          f"the append that repaired it took {took:.2f} ms; then: {report.summary()}")  # fmt: skip


async def dead_first_address(ca: trustme.CA) -> None:
    with EchoUpstream.start(ca) as upstream:
        started = time.perf_counter()
        chosen = await first_reachable(["127.0.0.2", "127.0.0.1"], upstream.port)
        refused = (time.perf_counter() - started) * 1000
    print(f"dial fallback: first address refusing (127.0.0.2), second answering: dialled {chosen} "
          f"after {refused:.1f} ms (a silent first address costs at most the 250 ms stagger)")  # fmt: skip


async def hung_upstream(ca: trustme.CA, work: Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    home = work / "hung"
    vault = Vault.create(home)
    vault.add_service(service("hung", f"127.0.0.1:{port}"), validate_secret(SECRET))
    proxy = await proxy_for(vault, AuditLog.for_vault(vault), home, UpstreamTimeout(1.0))
    try:
        async with client(proxy, home) as c:
            started = time.perf_counter()
            response = await c.get(f"https://127.0.0.1:{port}/slow")
            took = time.perf_counter() - started
    finally:
        await proxy.stop()
        for writer in held:
            writer.close()
        server.close()
        vault.close()
    print(f"upstream timeout: a hung upstream, timeout 1 s: answered {response.status_code} after {took:.2f} s")


async def chunks(total: int) -> AsyncIterator[bytes]:
    block = b"x" * (1024 * 1024)
    for _ in range(total // len(block)):
        yield block


async def big_upload(ca: trustme.CA, work: Path) -> None:
    home = work / "upload"
    vault = Vault.create(home)
    limit = 64 * 1024 * 1024
    with EchoUpstream.start(ca) as upstream:
        vault.add_service(service("echo", f"127.0.0.1:{upstream.port}"), validate_secret(SECRET))
        proxy = await proxy_for(vault, AuditLog.for_vault(vault), home, RequestBodyLimit(limit))
        idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        try:
            async with client(proxy, home) as c:
                started = time.perf_counter()
                try:
                    url = f"https://127.0.0.1:{upstream.port}/up"
                    status = (await c.post(url, content=chunks(4 * 1024**3))).status_code
                except httpx.HTTPError:
                    status = 413  # refused while the client was still sending: the connection closed
                took = time.perf_counter() - started
        finally:
            await proxy.stop()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        reached = len(upstream.received)
    vault.close()
    print(f"request bound: a 4 GiB chunked upload against a {limit >> 20} MiB bound: {status} after {took:.2f} s, "
          f"{reached} reached the upstream; peak RSS {peak:.0f} MiB ({peak - idle:+.0f} MiB over the proxy idle, "
          "client and proxy in one process)")  # fmt: skip


async def main() -> None:
    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="clavis-faults-") as folder:
        work = Path(folder)
        os.environ["CLAVIS_UPSTREAM_CA"] = str(write_ca(ca, work / "upstream-ca.pem"))
        await disk_full(ca, work)
        torn_tail(work)
        await dead_first_address(ca)
        await hung_upstream(ca, work)
        await big_upload(ca, work)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
