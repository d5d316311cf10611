"""One process of the cross-process refresh race: N concurrent requests that each need a fresh token.

Run as ``python -m tests.vault.oauth_race_worker HOME SERVICE API_URL GO_FILE N``. It opens the
vault, says ``ready``, waits for GO_FILE (so every process starts together), then has N tasks
each get a fresh token and call the API with what the proxy would inject. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import time
from pathlib import Path

import httpx

from clavis_mcp.vault import Vault
from clavis_mcp.vault.oauth.refresh import ensure_fresh


async def one_request(vault: Vault, name: str, api: str, client: httpx.AsyncClient) -> tuple[int, str]:
    await ensure_fresh(vault, name)
    token = vault.snapshot().secrets[name]  # exactly what InjectCredential reads
    response = await client.get(api, headers={"Authorization": f"Bearer {token.reveal()}"})
    return response.status_code, token.fingerprint


async def main(home: Path, name: str, api: str, go: Path, count: int) -> None:
    vault = Vault.open(home)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    trust = ssl.create_default_context()
    trust.load_verify_locations(cafile=os.environ["CLAVIS_UPSTREAM_CA"])
    async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
        results = await asyncio.gather(
            *(one_request(vault, name, api, client) for _ in range(count)), return_exceptions=True
        )
    vault.close()
    statuses = [r[0] if isinstance(r, tuple) else type(r).__name__ for r in results]
    tokens = sorted({r[1] for r in results if isinstance(r, tuple)})
    print(json.dumps({"statuses": statuses, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])))
