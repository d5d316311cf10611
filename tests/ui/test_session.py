"""The page's session: the token is never a cookie, never on a browser's command line, never in a redirect."""

from __future__ import annotations

import http.server
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.server import Page
from clavis_mcp.vault.approvals import Approvals

from .browser import chromium

EXE = str(Path(sys.executable).parent / "clavis-mcp")
pytestmark = pytest.mark.e2e


@contextmanager
def listener(answer: bytes) -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on another loopback port that records every request's line and headers."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            seen.append(f"{self.requestline}\n{self.headers}")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_same_site_bounce_to_another_loopback_port_learns_nothing_that_approves(page: Page, home: Path) -> None:
    queue = Approvals(home)
    held = queue.hold(service="openai", agent="ci-bot", method="DELETE", host="api.openai.com",
                      url="https://api.openai.com/v1/files/important", preview="", timeout=120)  # fmt: skip
    bounce = b'<html><script>if (location.pathname == "/") location = "/grab"</script>hello</html>'
    with listener(bounce) as (evil, seen):
        lure = f'<script>location = "http://127.0.0.1:{evil}/"</script>'.encode()
        with listener(lure) as (site, _), chromium() as browser:
            context = browser.new_context()
            tab = context.new_page()
            tab.goto(page.url)  # the person opens the printed address, then the approvals
            tab.goto(page.origin + "/approvals")
            tab.wait_for_selector(f'#queue tr[data-id="{held.id}"]')
            other = context.new_page()  # in another tab, an ordinary site sends it to another loopback port
            other.goto(f"http://localhost:{site}/")
            other.wait_for_url(re.compile(r".*/grab$"), timeout=10000)
        assert any("GET /grab" in request and "same-origin" in request for request in seen)  # the bounce happened
        assert not any(page.token in request for request in seen)
        assert not any("cookie" in request.lower() for request in seen)
        for request in seen:  # all it has: replayed as the approval's headers, it is refused
            headers = dict(line.split(": ", 1) for line in request.splitlines()[1:] if ": " in line)
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
            answer = httpx.post(f"{page.origin}/approvals/{held.id}", data={"decision": "approve"},
                                headers={**headers, "Origin": page.origin}, trust_env=False)  # fmt: skip
            assert answer.status_code in (401, 403)
    assert queue.get(held.id).state == "pending"
    queue.close()


def test_another_loopback_apps_cookie_does_not_lock_the_page(page: Page) -> None:
    headers = {SESSION_HEADER: page.token, "Cookie": 'theme=dark mode; quote="x; clavis_ui_1=junk'}
    assert httpx.get(page.origin + "/records", headers=headers, trust_env=False).status_code == 200


def test_no_answer_redirects_and_none_sets_a_cookie(page: Page) -> None:
    for path in (f"//evil.example/x?token={page.token}", f"/?token={page.token}", "/"):
        for accept in ("text/html", "*/*"):
            answer = httpx.get(page.origin + path, headers={"Accept": accept}, trust_env=False)
            assert answer.status_code in (200, 401), (path, accept)
            assert "location" not in answer.headers and "set-cookie" not in answer.headers
            assert page.token not in answer.text


def test_the_token_lasts_for_its_tab_and_a_new_tab_needs_the_printed_address(page: Page) -> None:
    with chromium() as browser:
        context = browser.new_context()
        tab = context.new_page()
        tab.goto(page.url)
        assert tab.url == page.origin + "/"  # out of the address bar, so out of history too
        tab.reload()
        tab.wait_for_selector("#chain")  # a reload keeps it
        other = context.new_page()
        other.goto(page.origin + "/records")
        other.wait_for_selector("text=open the URL that `clavis-mcp ui` printed")
        assert other.locator("#records").count() == 0
