"""The Approvals tab in Chromium shows what the queue knows of a held request (the method as sent and
as judged, the body's size) and lists the live approve-for-N-minutes grants with a Revoke button
(review 6, M1 and L4). A real proxy holds an agent's writes in front of the loopback echo upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.async_api import Page as Tab
from playwright.async_api import async_playwright, expect

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.ui.server import running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Service, Vault
from clavis_mcp.vault.approvals import ApprovalHold, Approvals, needs_for
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, proxy_client, running_proxy

from .browser import chromium_path

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SETTLE = 0.6  # ui.js ignores a click this soon after rows moved (SETTLE_MS)
BODY = b'{"purge": true}'
OVERRIDE = {"X-HTTP-Method-Override": "DELETE", "Content-Type": "application/json"}


@pytest.fixture
async def proxy(vault: Vault, audit: AuditLog, home: Path, local_service: Service) -> AsyncIterator[EmbeddedProxy]:
    hold = ApprovalHold(home, needs_for("writes"), timeout=60, poll=0.05)
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=hold)
    async with running_proxy(vault, audit, home, config) as started:
        yield started


@pytest.fixture
async def tab(vault: Vault, home: Path) -> AsyncIterator[Tab]:
    with running(AuditSource(home, vault)) as page:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path())
            opened = await browser.new_page()
            await opened.goto(page.url)
            await opened.goto(page.origin + "/approvals")
            yield opened
            await browser.close()


async def overridden(proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, path: str) -> httpx.Response:
    """A POST that tells the upstream to act as a DELETE."""
    async with proxy_client(proxy, home) as client:
        url = f"https://127.0.0.1:{upstream.port}{path}"
        return await client.post(url, content=BODY, headers=OVERRIDE, timeout=90)


async def held_ids(home: Path) -> list[str]:
    queue = Approvals(home)
    try:
        with anyio.fail_after(30):
            while not (found := queue.pending()):
                await asyncio.sleep(0.05)
        return [h.id for h in found]
    finally:
        queue.close()


async def test_the_page_shows_the_method_as_sent_and_as_judged_and_the_body_size_before_its_preview(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tab: Tab
) -> None:
    agent = asyncio.create_task(overridden(proxy, home, upstream, "/v1/files/one"))
    row = tab.locator("#queue tbody tr")
    await expect(row).to_have_count(1)
    await expect(row.locator(".c-request")).to_have_text(
        f"POST (X-HTTP-Method-Override: DELETE) https://127.0.0.1:{upstream.port}/v1/files/one"
    )
    await expect(row.locator(".c-judged")).to_have_text("DELETE")
    await expect(row.locator(".c-size")).to_have_text(f"{len(BODY)} bytes")
    await expect(row.locator(".c-preview")).to_have_text(BODY.decode())
    cells = await row.locator("td").evaluate_all("tds => tds.map(td => td.className)")
    assert cells.index("c-size") < cells.index("c-preview")
    covers = "this agent, service and DELETE, on any path of 127.0.0.1"
    await expect(row.locator(".c-actions")).to_contain_text(f"approve for: {covers}")
    await expect(row.locator("button[name=approve-for]")).to_have_attribute(
        "title", f"approve {await row.get_attribute('data-id')}, and for that many minutes every request of {covers}"
    )
    await row.locator("button[name=deny]").click()
    assert (await agent).status_code == 403


async def test_a_grant_made_on_the_page_is_listed_and_once_revoked_there_like_requests_wait_again(
    proxy: EmbeddedProxy, home: Path, audit: AuditLog, upstream: EchoUpstream, tab: Tab
) -> None:
    first = asyncio.create_task(overridden(proxy, home, upstream, "/v1/files/one"))
    (held_id,) = await held_ids(home)
    row = tab.locator(f'#queue tr[data-id="{held_id}"]')
    await row.locator("input[name=minutes]").fill("5")
    await row.locator("button[name=approve-for]").click()
    assert (await first).status_code == 200
    assert (await overridden(proxy, home, upstream, "/v1/files/two")).status_code == 200  # the grant covers it

    grant = tab.locator(f'#grants tr[data-id="{held_id}"]')
    await expect(grant.locator("td")).to_have_text([PROXY_USER, "echo", "DELETE", "127.0.0.1", "5 min", "ui", "revoke"])
    await expect(tab.locator("#grants-empty")).to_be_hidden()
    await tab.mouse.move(0, 0)  # off the queue: its decided row leaves, which moves the grants up
    await expect(row).to_have_count(0)
    await asyncio.sleep(SETTLE)
    await grant.locator("button[name=revoke]").click()
    await expect(grant).to_have_class("gone")
    await tab.mouse.move(0, 0)  # off the table: the ended row leaves
    await expect(tab.locator("#grants-empty")).to_be_visible()
    await expect(grant).to_have_count(0)
    revoked = [r for r in audit.records() if r.get("action") == "grant-revoke"]
    assert [(r["source"], r["method"], r["decision"]) for r in revoked] == [("ui", "DELETE", "revoked")]

    again = asyncio.create_task(overridden(proxy, home, upstream, "/v1/files/three"))
    (waiting,) = await held_ids(home)  # held again: no grant lets it through
    assert "/v1/files/three" not in str(upstream.received)
    await tab.locator(f'#queue tr[data-id="{waiting}"] button[name=deny]').click()
    assert (await again).status_code == 403
