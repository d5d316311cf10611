"""Approvals end to end: a real proxy holds an agent's write, the page (in Chromium) or the CLI decides.

The agent is an HTTPS_PROXY client of the real embedded proxy; the upstream is the loopback echo
server, which records what reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner
from playwright.async_api import async_playwright, expect

from clavis_mcp.certs import LocalCA
from clavis_mcp.clavis_cli.main import main
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.ui.server import running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Service, Vault
from clavis_mcp.vault.approvals import ApprovalHold, Approvals, needs_for
from clavis_mcp.vault.policy import ServicePolicy, save_policy, set_approvals
from clavis_mcp.vault.proxy_config import ProxyConfig
from clavis_mcp.vault.storage.sqlite import SQLiteStore
from demo.echo_upstream import EchoUpstream
from tests.conftest import PROXY_TOKEN, PROXY_USER, SECRET, proxy_client

from .browser import chromium_path

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def held_proxy(vault: Vault, audit: AuditLog, home: Path, timeout: float) -> EmbeddedProxy:
    hold = ApprovalHold(home, needs_for("writes"), timeout=timeout, poll=0.05)
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=hold)
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    return proxy


@pytest.fixture
async def proxy(vault: Vault, audit: AuditLog, home: Path, local_service: Service) -> AsyncIterator[EmbeddedProxy]:
    started = await held_proxy(vault, audit, home, timeout=60)
    try:
        yield started
    finally:
        await started.stop()


async def send_write(proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, path: str) -> httpx.Response:
    async with proxy_client(proxy, home) as client:
        return await client.post(f"https://127.0.0.1:{upstream.port}{path}", json={"title": "from the agent"},
                                 timeout=90)  # fmt: skip


async def waiting(home: Path, count: int = 1) -> list[str]:
    queue = Approvals(home)
    try:
        with anyio.fail_after(30):
            while len(found := queue.pending()) < count:
                await asyncio.sleep(0.05)
        return [h.id for h in found]
    finally:
        queue.close()


def records(audit: AuditLog) -> list[dict[str, object]]:
    return list(audit.records())


async def test_a_write_waits_for_the_page_and_goes_out_when_approved_there(
    proxy: EmbeddedProxy, home: Path, vault: Vault, audit: AuditLog, upstream: EchoUpstream
) -> None:
    with running(AuditSource(home, vault)) as page:
        agent = asyncio.create_task(send_write(proxy, home, upstream, "/v1/approved"))
        reads = await (await _get(proxy, home, upstream, "/v1/read")).aread()  # a read goes out unheld
        assert b"/v1/read" in reads
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path())
            tab = await browser.new_page()
            await tab.goto(page.url)
            await tab.click("nav >> text=Approvals")
            row = tab.locator("#queue tbody tr")
            await expect(row).to_have_count(1)
            await expect(row.locator(".c-request")).to_have_text(f"POST https://127.0.0.1:{upstream.port}/v1/approved")
            await expect(row.locator(".c-agent")).to_have_text(PROXY_USER)
            await expect(row.locator(".c-preview")).to_have_text('{"title":"from the agent"}')
            assert not agent.done()  # held: nothing went out yet
            assert "/v1/approved" not in str(upstream.received)
            await row.locator("button[name=approve]").click()
            await expect(tab.locator("#queue-empty")).to_be_visible()
            await browser.close()
        response = await agent
    assert response.status_code == 200
    assert json.loads(response.text)["path"] == "/v1/approved"
    assert json.loads(response.text)["headers"]["Authorization"] == "[REDACTED:echo]"
    decided = [r for r in records(audit) if r.get("action") == "approve"]
    assert len(decided) == 1 and decided[0]["source"] == "ui" and decided[0]["decision"] == "approved"
    sent = [r for r in records(audit) if r.get("path") == "/v1/approved" and r.get("decision") == "injected"]
    assert len(sent) == 1 and str(sent[0]["reason"]).startswith("approved by ui")


async def test_a_write_denied_on_the_page_is_refused_and_never_sent(
    proxy: EmbeddedProxy, home: Path, vault: Vault, audit: AuditLog, upstream: EchoUpstream
) -> None:
    with running(AuditSource(home, vault)) as page:
        agent = asyncio.create_task(send_write(proxy, home, upstream, "/v1/denied"))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium_path())
            tab = await browser.new_page()
            await tab.goto(page.url)
            await tab.goto(page.origin + "/approvals")
            await tab.locator("#queue tbody tr button[name=deny]").click()
            await expect(tab.locator("#queue-empty")).to_be_visible()
            await browser.close()
        response = await agent
    assert response.status_code == 403
    assert "ui denied this request" in response.text and "it was not sent" in response.text
    assert "/v1/denied" not in str(upstream.received)
    refused = [r for r in records(audit) if r.get("path") == "/v1/denied" and r.get("decision") == "refused"]
    assert len(refused) == 1 and "ui denied" in str(refused[0]["reason"])
    assert [r["source"] for r in records(audit) if r.get("action") == "deny"] == ["ui"]


async def test_a_write_nobody_answers_is_refused_when_its_time_runs_out(
    vault: Vault, audit: AuditLog, home: Path, local_service: Service, upstream: EchoUpstream
) -> None:
    proxy = await held_proxy(vault, audit, home, timeout=1.0)
    try:
        response = await send_write(proxy, home, upstream, "/v1/unanswered")
    finally:
        await proxy.stop()
    assert response.status_code == 403
    assert "waited 1 s for a person's approval" in response.text and "it was not sent" in response.text
    assert "/v1/unanswered" not in str(upstream.received)
    queue = Approvals(home)
    (held,) = [queue.get(i) for i in _all_ids(home)]
    queue.close()
    assert held.state == "timed out"
    result = CliRunner().invoke(main, ["approve", held.id])
    assert result.exit_code == 1 and f"request {held.id} was already timed out" in result.output


async def test_the_cli_lists_approves_for_minutes_and_like_requests_then_pass(
    proxy: EmbeddedProxy, home: Path, audit: AuditLog, upstream: EchoUpstream
) -> None:
    first = asyncio.create_task(send_write(proxy, home, upstream, "/v1/one"))
    (held_id,) = await waiting(home)
    listed = CliRunner().invoke(main, ["approvals"])
    assert held_id in listed.output and f"POST https://127.0.0.1:{upstream.port}/v1/one" in listed.output
    approved = await asyncio.to_thread(CliRunner().invoke, main, ["approve", held_id, "--minutes", "5"])
    assert approved.exit_code == 0, approved.output
    assert (await first).status_code == 200
    second = await send_write(proxy, home, upstream, "/v1/two")  # like the first: not held again
    assert second.status_code == 200
    assert [r["source"] for r in records(audit) if r.get("action") == "approve"] == ["cli"]
    again = CliRunner().invoke(main, ["deny", held_id])
    assert again.exit_code == 1 and f"request {held_id} was already approved by cli" in again.output
    assert SECRET not in listed.output


def _all_ids(home: Path) -> list[str]:
    with closing(SQLiteStore.open(home / "vault.db")) as store, store.read() as batch:
        return [record.key for record in batch.records("approval")]


async def _get(proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, path: str) -> httpx.Response:
    async with proxy_client(proxy, home) as client:
        return await client.get(f"https://127.0.0.1:{upstream.port}{path}")


async def test_by_default_the_services_confirm_writes_policy_decides_what_waits(
    vault: Vault, audit: AuditLog, home: Path, local_service: Service, upstream: EchoUpstream
) -> None:
    config = ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=ApprovalHold(home, timeout=1.0, poll=0.05))
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    try:
        assert (await send_write(proxy, home, upstream, "/v1/no-policy")).status_code == 200
        save_policy(vault, "echo", ServicePolicy(confirm_writes=True))
        held = await send_write(proxy, home, upstream, "/v1/confirm-writes")
        read = await _get(proxy, home, upstream, "/v1/a-read")
    finally:
        await proxy.stop()
    assert held.status_code == 403 and "waited 1 s for a person's approval" in held.text
    assert read.status_code == 200
    assert "/v1/confirm-writes" not in str(upstream.received)


async def test_a_held_request_raises_a_desktop_notification_with_the_agents_text_escaped(
    vault: Vault, audit: AuditLog, home: Path, local_service: Service, upstream: EchoUpstream,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bin_dir, seen = tmp_path / "bin", tmp_path / "notified.txt"
    bin_dir.mkdir()
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    hold = ApprovalHold(home, needs_for("writes"), timeout=1.0, poll=0.05, notify=True)
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"),
                          ProxyConfig(tokens=lambda: {PROXY_USER: PROXY_TOKEN}, approvals=hold))  # fmt: skip
    await proxy.start()
    try:
        response = await send_write(proxy, home, upstream, "/v1/this&that")
    finally:
        await proxy.stop()
    assert response.status_code == 403
    lines = seen.read_text().splitlines()
    assert lines[:2] == ["--app-name=clavis-mcp", "clavis-mcp: a request waits for your approval"]
    assert f"{PROXY_USER} -&gt; echo: POST https://127.0.0.1:{upstream.port}/v1/this&amp;that" in lines[2]


async def test_a_per_agent_policy_holds_agent_a_and_lets_agent_b_through(
    vault: Vault, audit: AuditLog, home: Path, local_service: Service, upstream: EchoUpstream
) -> None:
    """``approvals:<agent>`` in the vault's policy: one agent's writes wait, another's go out,
    and a service-wide ``all`` holds even a read of a third agent."""
    tokens = {PROXY_USER: PROXY_TOKEN, "agent-b": "token-b", "agent-c": "token-c"}
    config = ProxyConfig(tokens=lambda: tokens, approvals=ApprovalHold(home, timeout=1.0, poll=0.05))
    set_approvals(vault, "echo", "none")
    set_approvals(vault, "echo", "writes", agent=PROXY_USER)
    set_approvals(vault, "echo", "all", agent="agent-c")
    proxy = EmbeddedProxy(vault, audit, LocalCA(home / "certs"), config)
    await proxy.start()
    url = f"https://127.0.0.1:{upstream.port}"
    try:
        held = await send_write(proxy, home, upstream, "/v1/agent-a")
        async with proxy_client(proxy, home, ("agent-b", "token-b")) as client:
            passed = await client.post(url + "/v1/agent-b", json={})
        async with proxy_client(proxy, home, ("agent-c", "token-c")) as client:
            read = await client.get(url + "/v1/agent-c-read")
    finally:
        await proxy.stop()
    assert held.status_code == 403 and "waited 1 s for a person's approval" in held.text
    assert passed.status_code == 200 and read.status_code == 403
    assert [r.path for r in upstream.received] == ["/v1/agent-b"]
