"""``python -m bench.services_scale [N]``: what one more service, ``list_services`` and the
proxy's vault snapshot cost with N services (default 10,000), in a throwaway vault.

The services are filled with one ``add_services`` call; then three of each operation are timed.
The first ``list_services`` after ``Vault.open`` is what every one-shot CLI command pays; the MCP
tool's body (``mcp_front.tools.list_services``: the listing, then a page of it with each
service's state, policy and last use, as pydantic models) is what Claude Desktop waits for, first
in a process and again, for the default page, a page of 1,000, the last page and a name filter.
A snapshot is brought up to date by the proxy on its next request after any service or secret
changes, on the event loop, so its time is a stall of every request in flight (issue 18.4).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clavis_mcp.vault import Vault


def main(count: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="clavis-services-"))
    os.environ["CLAVIS_HOME"] = str(root / "home")
    from clavis_mcp.vault import Service, Vault, parse_header_template, parse_hosts, validate_secret

    auth = parse_header_template("Authorization: Bearer {secret}")

    def entry(i: int) -> tuple[Service, object]:
        service = Service(name=f"s-{i}", auth=auth, hosts=parse_hosts([f"s{i}.scale.example"]), created_at=time.time())
        return service, validate_secret(f"sk-scale-{i}-{secrets.token_hex(8)}")

    vault = Vault.create(root / "home")
    try:
        started = time.perf_counter()
        vault.add_services([entry(i) for i in range(count - 1)])  # type: ignore[misc]
        print(f"fill {count - 1:,} services in one add_services: {time.perf_counter() - started:.1f} s")
        for i in range(3):
            service, secret = entry(count + i)
            ms = _ms(lambda: vault.add_service(service, secret))  # type: ignore[arg-type]  # noqa: B023
            print(f"add one service at {count + i:,}: {ms:.1f} ms (target < 5 ms)")
        for _ in range(3):
            print(f"list_services at {count + 2:,}: {_ms(vault.list_services):.1f} ms (target < 25 ms)")
        for _ in range(3):
            vault.close()
            vault = Vault.open(root / "home")  # what a one-shot ``clavis-mcp list`` pays: no parse cached
            print(f"list_services, first after Vault.open: {_ms(vault.list_services):.1f} ms (target < 25 ms)")
        for _ in range(3):
            vault.rotate_secret("s-3", validate_secret(f"sk-rotated-{secrets.token_hex(8)}"))
            print(f"list_services after a change: {_ms(vault.list_services):.1f} ms (target < 25 ms)")
        vault = _tool(vault, root / "home")
        print(f"proxy snapshot, first (every definition parsed, every secret opened): {_ms(vault.snapshot):.1f} ms")
        for _ in range(3):
            service, secret = entry(count + 10 + _)
            vault.add_service(service, secret)  # type: ignore[arg-type]
            print(f"proxy snapshot after adding a service: {_ms(vault.snapshot):.1f} ms")
        for _ in range(3):
            vault.rotate_secret("s-7", validate_secret(f"sk-rotated-{secrets.token_hex(8)}"))
            print(f"proxy snapshot after a rotation: {_ms(vault.snapshot):.1f} ms")
        for i in range(3):
            print(f"remove one service: {_ms(lambda: vault.remove_service(f's-{20 + i}')):.1f} ms")  # noqa: B023
            print(f"proxy snapshot after a removal: {_ms(vault.snapshot):.1f} ms")
    finally:
        vault.close()
        shutil.rmtree(root, ignore_errors=True)


def _tool(vault: Vault, home: Path) -> Vault:
    """Time the MCP tool's body on a freshly opened vault; return that vault."""
    import asyncio

    from clavis_mcp.certs import LocalCA
    from clavis_mcp.mcp_front.gateway import Gateway
    from clavis_mcp.mcp_front.tools import list_services
    from clavis_mcp.vault import AuditLog, Vault

    vault.close()
    vault = Vault.open(home)
    audit = AuditLog.for_vault(vault)
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))

    def body(limit: int, cursor: str | None, match: str | None) -> str:
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(list_services(gateway, limit, cursor, match))
        return f"{(time.perf_counter() - wall) * 1000:.1f} ms ({(time.process_time() - cpu) * 1000:.1f} ms CPU)"

    for when in ("first in a process", "again", "again"):
        print(f"list_services MCP tool body, a page of 100, {when}: {body(100, None, None)} (target < 25 ms)")
    for _ in range(3):
        print(f"list_services MCP tool body, a page of 1,000: {body(1000, None, None)}")
    cursor = last = asyncio.run(list_services(gateway, 1000, None, None)).next_cursor
    while last is not None:  # the cursor of the last page of 1,000
        cursor, last = last, asyncio.run(list_services(gateway, 1000, last, None)).next_cursor
    for _ in range(3):
        print(f"list_services MCP tool body, a page by cursor near the end: {body(100, cursor, None)} (target < 25 ms)")
    for _ in range(3):
        print(f"list_services MCP tool body, match='s-99': {body(100, None, 's-99')} (target < 25 ms)")
    audit.close()
    return vault


def _ms(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
