"""`clavis-mcp approvals`/`approve` print agent-chosen text escaped, so no held request can rewrite
the approver's terminal (review 6, M2): the queue stores it escaped, and the CLI escapes again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import anyio
import httpx
import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import HELD, Approvals
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_USER, proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def proxy(writes_held_proxy: EmbeddedProxy) -> EmbeddedProxy:
    return writes_held_proxy


async def test_a_query_name_with_terminal_escapes_prints_escaped_and_the_delete_stays_visible(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    fake = f"  {PROXY_USER} -> echo  GET https://127.0.0.1:{upstream.port}/v1/models?limit"
    path = "/v1/files/important?" + quote("\r\x1b[8C\x1b[K" + fake + "\u202e\u2066", safe="") + "=1"

    async def agent() -> httpx.Response:
        async with proxy_client(proxy, home) as client:
            return await client.delete(f"https://127.0.0.1:{upstream.port}{path}", timeout=60)

    request = asyncio.create_task(agent())
    queue = Approvals(vault.store)
    with anyio.fail_after(20):
        while not (waiting := queue.pending()):
            await asyncio.sleep(0.05)
    listed = CliRunner().invoke(main, ["approvals"])
    (line,) = listed.output.splitlines()
    assert not {"\x1b", "\r", "\u202e", "\u2066"} & set(line)
    assert line.startswith(f"{waiting[0].id}  {PROXY_USER} -> echo  DELETE https://127.0.0.1:{upstream.port}/v1/")
    denied = await asyncio.to_thread(CliRunner().invoke, main, ["deny", waiting[0].id])
    assert denied.exit_code == 0, denied.output
    assert "\x1b" not in denied.output and "denied" in denied.output and "DELETE" in denied.output
    assert (await request).status_code == 403
    assert upstream.received == []


def test_the_cli_escapes_queue_text_again_whoever_wrote_it(home: Path, vault: Vault) -> None:
    queue = Approvals(vault.store)
    held = queue.hold(service="echo", agent="bot", method="POST", host="127.0.0.1", url="https://127.0.0.1/x",
                      preview="{}", size="2 bytes", timeout=60)  # fmt: skip
    with vault.store.atomic() as batch:  # a row as an older or foreign writer left it
        record = batch.get(HELD, held.id)
        assert record is not None
        fields = {**record.fields, "agent": "bot\x1b[2K\r", "url": "https://127.0.0.1/x\x9b1A", "preview": "{\x07}"}
        batch.put(HELD, held.id, fields, expect=record.version, quiet=True)
    listed = CliRunner().invoke(main, ["approvals"])
    assert listed.exit_code == 0, listed.output
    assert not {"\x1b", "\r", "\x9b", "\x07"} & set(listed.output)
    assert "bot\\x1b[2K\\x0d -> echo  POST https://127.0.0.1/x\\x9b1A" in listed.output
    assert "body (2 bytes): {\\x07}" in listed.output
