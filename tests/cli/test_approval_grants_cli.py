"""`clavis-mcp approvals` lists live approve-for-N-minutes grants and `clavis-mcp approvals
revoke-grant ID` ends one, so like requests wait for a person again (review 6, L4). A real proxy
holds writes in front of the loopback echo upstream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.approvals import Approvals
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_USER, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def proxy(writes_held_proxy: EmbeddedProxy) -> EmbeddedProxy:
    return writes_held_proxy


async def test_a_grant_is_listed_and_once_revoked_like_requests_wait_again(
    proxy: EmbeddedProxy, home: Path, vault: Vault, audit: AuditLog, upstream: EchoUpstream
) -> None:
    queue = Approvals(vault.store)
    url = f"https://127.0.0.1:{upstream.port}/v1/files/one"

    async def delete() -> httpx.Response:
        async with proxy_client(proxy, home) as client:
            return await client.delete(url, timeout=60)

    first = asyncio.create_task(delete())
    with anyio.fail_after(20):
        while not (waiting := queue.pending()):
            await asyncio.sleep(0.05)
    approved = await asyncio.to_thread(CliRunner().invoke, main, ["approve", waiting[0].id, "--minutes", "5"])
    assert approved.exit_code == 0, approved.output
    assert "on any path of 127.0.0.1" in approved.output
    assert (await first).status_code == 200
    assert (await delete()).status_code == 200  # like the first: the grant lets it through

    listed = CliRunner().invoke(main, ["approvals"])
    assert f"grant {waiting[0].id}  {PROXY_USER} -> echo  DELETE on any path of 127.0.0.1  (5 min left" in listed.output
    (as_json,) = [json.loads(line) for line in CliRunner().invoke(main, ["approvals", "--json"]).output.splitlines()]
    assert (as_json["kind"], as_json["held_id"], as_json["method"], as_json["minutes_left"]) == (
        "grant", waiting[0].id, "DELETE", 5
    )  # fmt: skip

    revoked = await asyncio.to_thread(CliRunner().invoke, main, ["approvals", "revoke-grant", waiting[0].id])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked grant {waiting[0].id}" in revoked.output
    assert "grant " not in CliRunner().invoke(main, ["approvals"]).output
    again = asyncio.create_task(delete())
    with anyio.fail_after(20):
        while not (waiting_again := queue.pending()):
            await asyncio.sleep(0.05)
    queue.decide(waiting_again[0].id, approve=False, by="ui")
    assert (await again).status_code == 403
    assert [r["source"] for r in audit.records() if r.get("action") == "grant-revoke"] == ["cli"]

    unknown = CliRunner().invoke(main, ["approvals", "revoke-grant", waiting[0].id])
    assert unknown.exit_code == 1 and "no live grant" in unknown.output
