"""``python -m bench.services_scale [N]``: what one more service, ``list_services`` and the
proxy's vault snapshot cost with N services (default 10,000), in a throwaway vault.

The services are filled with one ``add_services`` call; then three of each operation are timed.
The first ``list_services`` after ``Vault.open`` is what every one-shot CLI command pays.
A snapshot is rebuilt by the proxy on its next request after any service or secret changes, on
the event loop, so its time is a stall of every request in flight (issue 18.4).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path


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
        print(f"proxy snapshot, first (every definition parsed, every secret opened): {_ms(vault.snapshot):.1f} ms")
        for _ in range(3):
            service, secret = entry(count + 10 + _)
            vault.add_service(service, secret)  # type: ignore[arg-type]
            print(f"proxy snapshot after adding a service: {_ms(vault.snapshot):.1f} ms")
        for _ in range(3):
            vault.rotate_secret("s-7", validate_secret(f"sk-rotated-{secrets.token_hex(8)}"))
            print(f"proxy snapshot after a rotation: {_ms(vault.snapshot):.1f} ms")
    finally:
        vault.close()
        shutil.rmtree(root, ignore_errors=True)


def _ms(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
