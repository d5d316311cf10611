"""Padding cannot push what a held request does out of its preview (UI re-review, LOW-2).

Escaped, one blank or invisible character takes 6 to 10 of the preview's 300 characters, so
400 braille blanks (U+2800) once filled it. A real proxy holds writes in front of the loopback
echo upstream; the preview is read from the shared queue, as the page and the CLI read it.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import anyio
import httpx
import pytest

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import Approvals, Held
from demo.echo_upstream import EchoUpstream
from tests.conftest import proxy_client

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ACTION = '"action": "transfer_ownership", "to": "attacker"}'
PADDINGS = [
    ("braille-blanks", "\u2800" * 400, "\\u2800[x400]"),
    ("zero-width-spaces", "\u200b" * 50, "\\u200b[x50]"),
    ("tag-spaces", "\U000e0020" * 30, "\\U000e0020[x30]"),
    ("dashes", "-" * 300, "-[x300]"),
]


@pytest.fixture
def proxy(writes_held_proxy: EmbeddedProxy) -> EmbeddedProxy:
    return writes_held_proxy


async def preview_of(proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream, body: bytes) -> Held:
    """The held request ``body`` makes, denied once read."""

    async def go() -> httpx.Response:
        async with proxy_client(proxy, home) as client:
            url = f"https://127.0.0.1:{upstream.port}/v1/x"
            return await client.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)

    request = asyncio.create_task(go())
    queue = Approvals(vault.store)
    with anyio.fail_after(20):
        while not (found := queue.pending()):
            await asyncio.sleep(0.05)
    (waiting,) = found
    queue.decide(waiting.id, approve=False, by="ui")
    assert (await request).status_code == 403
    return waiting


@pytest.mark.parametrize(("padding", "shown"), [c[1:] for c in PADDINGS], ids=[c[0] for c in PADDINGS])
async def test_a_run_of_one_padding_character_is_shown_once_with_its_count(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream, padding: str, shown: str
) -> None:
    body = f'{{"note": "{padding}", {ACTION}'.encode()
    waiting = await preview_of(proxy, home, vault, upstream, body)
    assert waiting.preview == f'{{"note": "{shown}", {ACTION}'


async def test_a_long_body_shows_its_head_and_its_tail_with_the_count_between(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    note = "\u2800\u200b" * 500  # alternating: no run to collapse
    body = json.dumps({"note": note, "action": "transfer_ownership"}, ensure_ascii=False).encode()
    waiting = await preview_of(proxy, home, vault, upstream, body)
    found = re.fullmatch(r"(.*)\.\.\. \((\d+) characters not shown\) \.\.\.(.*)", waiting.preview)
    assert found is not None
    head, elided, tail = found[1], int(found[2]), found[3]
    assert head.startswith('{"note": "\\u2800\\u200b') and len(head) <= 150
    assert tail.endswith('\\u200b", "action": "transfer_ownership"}') and len(tail) <= 150
    # 1,044 characters: the head shows 10 plain and 23 escaped (148 of its 150), the tail 34 and 19
    assert elided == 1044 - (10 + 23) - (34 + 19)


async def test_runs_of_digits_and_letters_are_shown_as_sent(
    proxy: EmbeddedProxy, home: Path, vault: Vault, upstream: EchoUpstream
) -> None:
    """An amount is read by the approver: 100000000 must not read as 10[x8]."""
    body = b'{"amount": 100000000, "to": "AAAAAAAAAA"}'
    waiting = await preview_of(proxy, home, vault, upstream, body)
    assert waiting.preview == '{"amount": 100000000, "to": "AAAAAAAAAA"}'
