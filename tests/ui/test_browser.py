"""The page in a real browser: the known log's figures, filtering, the live tail, the screenshot."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page as Tab
from playwright.sync_api import expect

from clavis_mcp.ui.server import Page, running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.audit import log as audit_log_module
from clavis_mcp.vault.limits import ratelimits

from .browser import ConsoleProblems, chromium
from .conftest import BY_DECISION, TOTAL

pytestmark = pytest.mark.e2e
# The docs' picture is refreshed on request (CLAVIS_UPDATE_SCREENSHOT=1); a plain run writes it to
# the test's temporary folder, so running the suite leaves the tree unchanged.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "overview.png"


@pytest.fixture
def tab(page: Page) -> Iterator[tuple[Tab, ConsoleProblems]]:
    problems = ConsoleProblems()
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        outside: list[str] = []
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(page.origin)
                      else (outside.append(route.request.url), route.abort()))  # fmt: skip
        tab = context.new_page()
        tab.on("console", problems)
        yield tab, problems
        assert outside == [], "the page asked another origin"
        context.close()


def test_the_overview_shows_the_known_logs_timeline_and_matrix(tab: tuple[Tab, ConsoleProblems], page: Page) -> None:
    browser_tab, problems = tab
    browser_tab.goto(page.url)
    assert browser_tab.url == page.origin + "/"  # the token left the address bar
    expect(browser_tab.locator("#total")).to_have_text(str(TOTAL))
    for decision, count in BY_DECISION.items():
        shown = browser_tab.locator(f"#timeline rect[data-decision={decision}]").evaluate_all(
            "rects => rects.reduce((n, r) => n + Number(r.dataset.count), 0)"
        )
        assert shown == count, decision
        expect(browser_tab.locator(f"#timeline rect[data-decision={decision}]").first).to_be_visible()
    cell = browser_tab.locator('#matrix td[data-service="openai"][data-agent="mcp"]')
    expect(cell.locator("b")).to_have_text("5")
    expect(cell).to_contain_text("4.9 KiB")
    expect(browser_tab.locator('#matrix td[data-service="openai"][data-agent="ci-bot"]')).to_contain_text("1 err")
    expect(browser_tab.locator("#chain")).to_have_class("badge ok")
    expect(browser_tab.locator("#refusals")).to_contain_text("method POST not allowed")
    fill = browser_tab.locator("#timeline rect[data-decision=injected]").first.evaluate("r => getComputedStyle(r).fill")
    assert fill == "rgb(46, 125, 50)"  # the stylesheet applied under the CSP
    assert problems == []


def test_records_are_filtered_in_the_browser(tab: tuple[Tab, ConsoleProblems], page: Page) -> None:
    browser_tab, problems = tab
    browser_tab.goto(page.url)
    browser_tab.click("nav >> text=Records")
    expect(browser_tab.locator("#records tbody tr")).to_have_count(TOTAL)
    browser_tab.fill("#filters input[name=service]", "github")
    browser_tab.fill("#filters input[name=decision]", "refused")
    browser_tab.click("#filters button")
    expect(browser_tab.locator("#records tbody tr")).to_have_count(4)
    expect(browser_tab.locator("#records .c-service")).to_have_text(["github"] * 4)
    browser_tab.locator("#records summary").first.click()
    expect(browser_tab.locator("#records dl").first).to_contain_text("prev")
    assert problems == []


def test_a_new_record_arrives_live(tab: tuple[Tab, ConsoleProblems], page: Page, known_log: AuditLog) -> None:
    browser_tab, problems = tab
    browser_tab.goto(page.url)
    browser_tab.goto(page.origin + "/records?agent=ci-bot")
    expect(browser_tab.locator("#live")).to_have_class("live on")
    known_log.append(source="mcp", service="openai", decision="injected", path="/elsewhere")
    new = known_log.append(source="ci-bot", service="github", method="DELETE", host="api.github.com",
                           path="/repos/x", status=403, decision="refused", reason="arrived live")  # fmt: skip
    row = browser_tab.locator(f'#records tr[data-id="{new}"]')
    expect(row).to_be_visible()
    expect(row.locator(".c-reason")).to_have_text("arrived live")
    expect(browser_tab.locator("#records tbody tr").first).to_have_attribute("data-id", new)
    expect(browser_tab.locator("#records tbody tr")).to_have_count(9)  # 8 of ci-bot + the new one
    assert problems == []


def write_a_busy_day(log: AuditLog, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> int:
    """A day of traffic from three agents, at the times it happened (the log takes a record's time
    from its module's ``_now``): what the screenshot in docs/ui.md shows."""
    now = datetime.now(UTC)
    moments: list[datetime] = []
    monkeypatch.setattr(audit_log_module, "_now", lambda: moments.pop(0).isoformat(timespec="milliseconds"))
    rng = random.Random(17)
    plan = []
    for _ in range(420):
        hours_ago = rng.triangular(0, 23.9, 9)
        agent = rng.choices(["mcp", "ci-bot", "notebook"], [5, 3, 2])[0]
        service = rng.choices(["openai", "github", "anthropic", "stripe"], [5, 3, 3, 1])[0]
        decision = rng.choices(["injected", "refused", "error", "passed", "revealed"], [80, 8, 3, 8, 1])[0]
        plan.append((now - timedelta(hours=hours_ago), agent, service, decision))
    plan.sort()
    reasons = ["method DELETE not allowed", "Host differs from the CONNECT target", "budget exhausted for today",
               "path /admin not allowed"]  # fmt: skip
    for moment, agent, service, decision in plan:
        moments.append(moment)
        host = f"api.{service}.com"
        log.append(source=agent, service=None if decision == "passed" else service, method="GET",
                   scheme="https", host="pypi.org" if decision == "passed" else host, port=443, path="/v1/x",
                   status={"injected": 200, "refused": 403, "error": 502}.get(decision),
                   bytes=rng.randint(200, 40_000) if decision == "injected" else 0,
                   duration_ms=round(rng.lognormvariate(5, 0.6)) if decision == "injected" else None,
                   decision=decision, reason=rng.choice(reasons) if decision == "refused" else None)  # fmt: skip
    monkeypatch.undo()
    ratelimits.record(vault, "openai", {"x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests":
                                        "4812", "x-ratelimit-reset-requests": "6m0s"}, now.timestamp())  # fmt: skip
    reset = str(int(now.timestamp()) + 1800)
    ratelimits.record(vault, "github", {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "212",
                                        "x-ratelimit-reset": reset}, now.timestamp())  # fmt: skip
    return len(plan)


def test_a_screenshot_of_a_busy_day_for_the_docs(
    home: Path, vault: Vault, audit: AuditLog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.conftest import make_service
    from tests.ui.conftest import _secret

    for name in ("openai", "github", "anthropic", "stripe"):
        vault.add_service(make_service(name, f"api.{name}.com"), _secret())
    total = write_a_busy_day(audit, vault, monkeypatch)
    with running(AuditSource(home, vault)) as served, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.goto(served.url + "&period=day")
        expect(tab.locator("#total")).to_have_text(str(total))
        expect(tab.locator("#chain")).to_have_class("badge ok")
        assert tab.locator("#timeline g.bar[data-total]:not([data-total='0'])").count() > 12
        shot = DOCS_SCREENSHOT if os.environ.get("CLAVIS_UPDATE_SCREENSHOT") == "1" else tmp_path / "overview.png"
        tab.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
