"""Only the page's own HTML is swapped into the shell: agent text in a JSON answer never becomes markup.

The shell used to be served for any path a navigation asked, and its script parsed whatever the
path answered as HTML, so a held request's preview in /approvals.json became live elements (a
link, a meta refresh to another port) in the person's tab (review 28, L1).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Route

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.server import Page
from clavis_mcp.vault.approvals import Approvals

from .browser import chromium

pytestmark = pytest.mark.e2e


@contextmanager
def evil_listener() -> Iterator[tuple[int, list[str]]]:
    """Another loopback port that records every path asked of it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


def markup(evil: int) -> str:
    return (f"<h2 id=fake>Approve everything: click below</h2><a id=lnk href=http://127.0.0.1:{evil}/phish>re-open</a>"
            f"<meta http-equiv=refresh content=1;url=http://127.0.0.1:{evil}/refresh>")  # fmt: skip


FOUND = (
    "[!!document.getElementById('fake'), !!document.getElementById('lnk'),"
    " document.querySelectorAll('meta[http-equiv]').length]"
)


def test_agent_markup_in_the_queues_json_never_becomes_elements_in_the_tab(page: Page, home: Path) -> None:
    with evil_listener() as (evil, hits):
        queue = Approvals(home)
        queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                   url="https://api.openai.com/v1/x", preview=markup(evil), timeout=60)  # fmt: skip
        queue.close()
        with chromium() as browser:
            tab = browser.new_page()
            tab.goto(page.url)
            tab.wait_for_selector("#chain")
            tab.goto(page.origin + "/approvals.json")  # the tab holds a session; a navigation to the JSON
            time.sleep(2)  # longer than the payload's refresh
            assert tab.evaluate(FOUND) == [False, False, 0]
            assert "Approve everything" not in tab.locator("body").inner_text()
        assert hits == []


def test_the_shells_script_shows_a_non_html_answer_as_text(page: Page) -> None:
    """Were a page path ever to answer something else, its script would not parse it as markup."""
    with evil_listener() as (evil, hits), chromium() as browser:
        tab = browser.new_page()

        def as_json(route: Route) -> None:
            if route.request.headers.get(SESSION_HEADER):  # the script's fetch, not the navigation
                route.fulfill(status=200, content_type="application/json", body=json.dumps({"preview": markup(evil)}))
            else:
                route.continue_()

        tab.route(page.origin + "/records", as_json)
        tab.goto(page.url)
        tab.wait_for_selector("#chain")
        tab.goto(page.origin + "/records")
        tab.wait_for_selector("text=Approve everything")  # shown, as text
        time.sleep(2)
        assert tab.evaluate(FOUND) == [False, False, 0]
    assert hits == []


@pytest.mark.parametrize("path", ["/approvals.json", "/events", "/static/", "/no-such-page", "/records/x"])
def test_a_navigation_gets_the_shell_only_for_the_pages_own_paths(page: Page, path: str) -> None:
    answer = httpx.get(page.origin + path, headers={"Accept": "text/html"}, trust_env=False)
    assert answer.status_code in (401, 404) and "data-shell" not in answer.text


@pytest.mark.parametrize("path", ["/", "/records", "/approvals"])
def test_each_page_path_gets_the_shell(page: Page, path: str) -> None:
    answer = httpx.get(page.origin + path, headers={"Accept": "text/html"}, trust_env=False)
    assert answer.status_code == 200 and "data-shell" in answer.text


def test_json_answers_write_angle_brackets_and_ampersands_as_escapes(page: Page, home: Path) -> None:
    queue = Approvals(home)
    held = queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                      url="https://api.openai.com/v1/x?a=1&b=2", preview="<b>x</b> & y", timeout=60)  # fmt: skip
    queue.close()
    answer = httpx.get(page.origin + "/approvals.json", headers={SESSION_HEADER: page.token}, trust_env=False)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert not {"<", ">", "&"} & set(answer.text) and "\\u003cb\\u003ex\\u003c/b\\u003e \\u0026 y" in answer.text
    [shown] = answer.json()["pending"]
    assert shown["id"] == held.id and shown["preview"] == "<b>x</b> & y" and shown["url"].endswith("?a=1&b=2")
