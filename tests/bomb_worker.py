"""One decompression bomb in a fresh process, which reports its own peak memory.

``python -m tests.bomb_worker SCENARIO WARM_URL BOMB_URL``, with the vault at ``CLAVIS_HOME``
(a service ``api`` on the upstream's address) and the upstream running in the test process. It
first does the same thing with ``WARM_URL`` (an ordinary answer), so imports, the proxy and TLS
are paid for; reads its peak RSS; does it with ``BOMB_URL``; reads the peak again; prints one
JSON line with both peaks in MiB and what the client saw. The peak (``ru_maxrss``) is the
honest measure: whatever a decoder held, however briefly, is in it.

Scenarios: ``call_service`` (an MCP client session, the gateway and the embedded proxy),
``gateway`` (the gateway's own reading of an answer, with no proxy in front: the defence behind
the proxy's), ``agent`` (an HTTPS_PROXY agent through the embedded proxy).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import CallLimits
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig
from tests.conftest import PROXY_TOKEN, PROXY_USER

GATEWAY_DOWNLOAD = 4 * 1024 * 1024  # the gateway scenario's download bound: well under any bomb

Scenario = Callable[[Vault, Path, list[str]], Awaitable[list[dict[str, Any]]]]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def call_service(vault: Vault, home: Path, urls: list[str]) -> list[dict[str, Any]]:
    gateway = Gateway(vault, AuditLog.for_vault(vault), LocalCA(home / "certs"))
    seen = []
    async with Client(build_server(gateway)) as client:
        for url in urls:
            result = await client.call_tool("call_service", {"service_name": "api", "method": "GET", "url": url})
            text = result.content[0].text if result.content else ""
            seen.append({"peak": peak_mib(), "is_error": result.is_error, "text": text})
    await gateway.aclose()
    return seen


async def gateway_reading(vault: Vault, home: Path, urls: list[str]) -> list[dict[str, Any]]:
    gateway = Gateway(vault, AuditLog.for_vault(vault), LocalCA(home / "certs"),
                      limits=CallLimits(max_download=GATEWAY_DOWNLOAD))  # fmt: skip
    trust = ssl.create_default_context(cafile=os.environ["CLAVIS_UPSTREAM_CA"])
    seen = []
    async with httpx.AsyncClient(verify=trust, trust_env=False) as direct:
        for url in urls:
            response = await direct.send(direct.build_request("GET", url), stream=True)
            fetched = await gateway.read_answer("api", url, response)  # the reading, without the proxy
            seen.append({"peak": peak_mib(), "size": fetched.size, "complete": fetched.complete,
                         "head": len(fetched.head), "status": fetched.status})  # fmt: skip
    return seen


async def agent(vault: Vault, home: Path, urls: list[str]) -> list[dict[str, Any]]:
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN})
    proxy = EmbeddedProxy(vault, AuditLog.for_vault(vault), LocalCA(home / "certs"), config)
    await proxy.start()
    trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
    seen = []
    try:
        async with httpx.AsyncClient(proxy=httpx.Proxy(proxy.url, auth=(PROXY_USER, PROXY_TOKEN)), verify=trust,
                                     trust_env=False, timeout=60) as client:  # fmt: skip
            for url in urls:
                seen.append(await _read_as_agent(client, url) | {"peak": peak_mib()})
    finally:
        await proxy.stop()
    return seen


async def _read_as_agent(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """Read the raw body and count it, as a careful agent would: the agent's memory is not under test."""
    received, error = 0, None
    async with client.stream("GET", url) as response:
        try:
            async for raw in response.aiter_raw():
                received += len(raw)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        return {"status": response.status_code, "refused": response.headers.get("x-clavis-refused"),
                "encoding": response.headers.get("content-encoding"), "received": received, "error": error}  # fmt: skip


SCENARIOS: dict[str, Scenario] = {"call_service": call_service, "gateway": gateway_reading, "agent": agent}


async def main(scenario: str, urls: list[str]) -> None:
    home = Path(os.environ["CLAVIS_HOME"])
    vault = Vault.open(home)
    try:
        warm, bombed = await SCENARIOS[scenario](vault, home, urls)
    finally:
        vault.close()
    print(json.dumps({"baseline_mib": warm["peak"], "peak_mib": bombed["peak"], "warm": warm, "bomb": bombed}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
