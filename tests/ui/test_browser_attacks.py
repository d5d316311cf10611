"""Another site, open in the same browser as the page, tries to approve a held request: a form
that posts itself, and a fetch with credentials. The request stays pending."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from clavis_mcp.ui.server import Page
from clavis_mcp.vault.approvals import Approvals

from .browser import chromium

pytestmark = pytest.mark.e2e


def evil_site(html: str) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"  # another site than 127.0.0.1
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def held(page: Page, home: Path) -> Iterator[tuple[Approvals, str]]:
    queue = Approvals(home)
    entry = queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                       url="https://api.openai.com/v1/x", preview="", timeout=120)  # fmt: skip
    yield queue, entry.id
    queue.close()


def test_another_site_cannot_approve_a_held_request(page: Page, held: tuple[Approvals, str]) -> None:
    queue, held_id = held
    target = f"{page.origin}/approvals/{held_id}"
    attack = (
        f'<form id="f" method="post" action="{target}"><input name="decision" value="approve"></form>'
        "<script>"
        f'fetch("{target}", {{method: "POST", credentials: "include", mode: "no-cors",'
        ' headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "decision=approve"})'
        '.finally(() => { document.title = "fetched"; document.getElementById("f").submit(); });'
        "</script>"
    )
    for url in evil_site(attack):
        with chromium() as browser:
            tab = browser.new_page()
            tab.goto(page.url)  # the person has the page open: the browser holds its cookie
            expect(tab.locator("#chain")).to_be_visible()
            with tab.expect_navigation(url=f"{target}"):
                tab.goto(url)
            refusal = tab.locator("body").inner_text()
            assert "refused" in refusal  # the form's post was answered by the guard
    assert queue.get(held_id).state == "pending"


def test_the_page_itself_can_approve_it(page: Page, held: tuple[Approvals, str]) -> None:
    queue, held_id = held
    with chromium() as browser:
        tab = browser.new_page()
        tab.goto(page.url)
        tab.goto(page.origin + "/approvals")
        row = tab.locator(f'#queue tr[data-id="{held_id}"]')
        row.locator("input[name=minutes]").fill("3")
        row.locator("button[name=approve-for]").click()
        expect(tab.locator("#queue-empty")).to_be_visible()
    decided = queue.get(held_id)
    assert (decided.state, decided.decided_by, decided.minutes) == ("approved", "ui", 3)
