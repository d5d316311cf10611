"""Team mode's /v1/call against the local MCP call_service, on the same loopback upstream.

Run: ``.venv/bin/python -m bench.team_call [--calls N] [--concurrency C]``. Prints figures, asserts
nothing. Four subjects send the same small GET to the bench upstream with the same credential:
direct httpx (the baseline, credential in hand), call_service in an in-memory MCP session (the
local product), and /v1/call on a `team serve` with 1 and with 3 uvicorn workers on a real
OpenBao and PostgreSQL. Latency is sequential on one keep-alive connection (the server's own
cost), plus the SDK's pattern (a new connection per call); throughput is C callers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from clavis import ClavisClient
from mcp import Client

from clavis_mcp.clavis_cli.runtime import open_runtime
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.team.bootstrap import bootstrap
from clavis_mcp.team.engines import start_openbao, start_postgres
from clavis_mcp.team.storage import service_to_json

from .fixture import SECRET, SERVICE, World, world
from .stats import percentile
from .upstream import SMALL

Call = Callable[[], Awaitable[None]]


async def sequential(call: Call, count: int) -> float:
    await call()
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)
    return percentile(latencies, 50)


async def throughput(call: Call, count: int, concurrency: int) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def start_team(w: World, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    log = w.root / f"team-{workers}.log"
    code = f"from clavis_mcp.team.serve import serve; serve('127.0.0.1', 0, {workers})"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if "listening on " in line:
                return process, line.rsplit(" ", 1)[1]
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"team serve did not start: {log.read_text()[-2000:]}")


async def measure_team(w: World, url: str, key: str, calls: int, concurrency: int) -> dict[str, float]:
    body = {"method": "GET", "url": w.base_url + SMALL}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, trust_env=False, timeout=60) as http:

        async def keepalive() -> None:
            answer = await http.post(f"/v1/call/{SERVICE}", json=body)
            if answer.status_code != 200 or SECRET in answer.text:
                raise RuntimeError(f"/v1/call answered {answer.status_code}: {answer.text[:200]}")

        sdk = ClavisClient(key, base_url=url)

        async def sdk_call() -> None:
            await sdk.call(SERVICE, "GET", w.base_url + SMALL)

        return {
            "p50 keep-alive ms": await sequential(keepalive, calls),
            "p50 SDK ms": await sequential(sdk_call, calls),
            "req/s": await throughput(keepalive, calls * 2, concurrency),
        }


async def measure_local(w: World, calls: int, concurrency: int) -> dict[str, dict[str, float]]:
    arguments: dict[str, object] = {"service_name": SERVICE, "method": "GET", "url": w.base_url + SMALL}
    with open_runtime() as runtime:
        gateway = Gateway(runtime.vault, runtime.audit, runtime.ca)
        try:
            async with (
                Client(build_server(gateway)) as client,
                httpx.AsyncClient(verify=w.upstream_trust(), trust_env=False) as direct,
            ):

                async def tool() -> None:
                    result = await client.call_tool("call_service", arguments)
                    if result.is_error or SECRET in json.dumps(result.model_dump(mode="json")):
                        raise RuntimeError("call_service failed")

                async def plain() -> None:
                    await direct.get(w.base_url + SMALL, headers={"Authorization": f"Bearer {SECRET}"})

                return {
                    "direct httpx": {
                        "p50 ms": await sequential(plain, calls),
                        "req/s": await throughput(plain, calls * 2, concurrency),
                    },  # fmt: skip
                    "MCP call_service (in memory)": {
                        "p50 ms": await sequential(tool, calls),
                        "req/s": await throughput(tool, calls * 2, concurrency),
                    },  # fmt: skip
                }
        finally:
            await gateway.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with world() as w:
        figures = asyncio.run(measure_local(w, args.calls, args.concurrency))
        with start_openbao(w.root) as bao, start_postgres(w.root) as pg:
            boot = bootstrap(bao.addr, bao.root_token, pg.dsn, admin_email="bench@example.test",
                             admin_password="bench-password-0123")  # fmt: skip
            env = {**os.environ, **boot.env, "CLAVIS_UPSTREAM_CA": str(w.upstream_ca_file)}
            env.pop("CLAVIS_HOME", None)
            from clavis_mcp.vault import Vault

            with Vault.open(w.home) as vault:
                definition = service_to_json(vault.get_service(SERVICE))
            key = ""
            for workers in (1, 3):
                process, url = start_team(w, workers, env)
                try:
                    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {boot.admin_key}"})
                    if workers == 1:
                        admin.post("/v1/admin/services", json={"definition": definition, "secret": SECRET})
                        made = admin.post("/v1/admin/keys", json={"name": "bench", "services": [SERVICE]}).json()
                        key = made["key"]
                    admin.close()
                    figures[f"team /v1/call, {workers} worker(s)"] = asyncio.run(
                        measure_team(w, url, key, args.calls, args.concurrency)
                    )
                finally:
                    os.killpg(process.pid, 15)
                    process.wait(timeout=30)
    base = figures["direct httpx"]
    print(f"team_call: {args.calls} sequential calls, throughput with {args.concurrency} callers (2 CPU cores shared)")
    for subject, values in figures.items():
        shown = ", ".join(f"{name} {value:.1f}" for name, value in values.items())
        ratio = values.get("p50 keep-alive ms", values.get("p50 ms", 0.0)) / base["p50 ms"]
        print(f"  {subject:34} {shown}   (p50 x{ratio:.1f} of direct)")


if __name__ == "__main__":
    main()
