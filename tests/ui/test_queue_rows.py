"""The approval queue in a real browser: rows stay under the pointer, so a click decides what the person read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from clavis_mcp.ui.server import Page
from clavis_mcp.vault.approvals import Approvals

from .browser import chromium

pytestmark = pytest.mark.e2e


def test_a_row_that_timed_out_under_the_pointer_stays_there_and_its_click_approves_nothing(
    page: Page, home: Path
) -> None:
    queue = Approvals(home)
    benign = queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                        url="https://api.openai.com/v1/chat/completions", preview="{}", timeout=4)  # fmt: skip
    harmful = queue.hold(service="openai", agent="ci-bot", method="DELETE", host="api.openai.com",
                         url="https://api.openai.com/v1/files/training", preview="", timeout=120)  # fmt: skip
    with chromium() as browser:
        tab = browser.new_page()
        tab.goto(page.url)
        tab.goto(page.origin + "/approvals")
        tab.wait_for_selector(f'#queue tr[data-id="{harmful.id}"]')
        first = tab.locator("#queue tbody tr").first
        assert first.get_attribute("data-id") == benign.id  # what the person reads, pointer on its button
        box = first.locator("button[name=approve]").bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        tab.mouse.move(x, y)
        time.sleep(max(0.0, benign.deadline - time.time()) + 0.6)  # its time runs out; the page polls
        under = tab.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('tr').dataset.id", [x, y])
        assert under == benign.id
        expect(first).to_have_class("gone")
        expect(first.locator("button[name=approve]")).to_be_disabled()
        tab.mouse.click(x, y)
        time.sleep(1)
    assert queue.get(harmful.id).state == "pending"
    queue.close()


# Clicks the second row's approve button in the same turn of the page's loop as the first row
# leaves (a MutationObserver callback): "just after" whatever the machine's load, not a race
# between the test's click and the page's 500 ms.
CLICK_AS_ROW_LEAVES = """([first, second]) => {
  window.clickedAsRowLeft = new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (document.querySelector(`#queue tr[data-id="${first}"]`)) return;
      observer.disconnect();
      document.querySelector(`#queue tr[data-id="${second}"] button[name=approve]`).click();
      resolve(true);
    });
    observer.observe(document.querySelector("#queue"), {childList: true, subtree: true});
  });
}"""


def test_a_click_just_after_a_row_left_is_ignored_and_a_later_one_counts(page: Page, home: Path) -> None:
    queue = Approvals(home)
    try:
        first = queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                           url="https://api.openai.com/v1/a", preview="", timeout=120)  # fmt: skip
        second = queue.hold(service="openai", agent="ci-bot", method="DELETE", host="api.openai.com",
                            url="https://api.openai.com/v1/b", preview="", timeout=120)  # fmt: skip
        with chromium() as browser:
            tab = browser.new_page()
            tab.goto(page.url)
            tab.goto(page.origin + "/approvals")
            tab.wait_for_selector(f'#queue tr[data-id="{second.id}"]')
            tab.evaluate(CLICK_AS_ROW_LEAVES, [first.id, second.id])
            queue.decide(first.id, approve=False, by="cli")  # decided elsewhere; the pointer is off the table
            assert tab.evaluate("window.clickedAsRowLeft")  # the row moved up under that click
            time.sleep(1)
            assert queue.get(second.id).state == "pending"
            tab.locator(f'#queue tr[data-id="{second.id}"] button[name=approve]').click()
            expect(tab.locator(f'#queue tr[data-id="{second.id}"]')).to_have_class("gone")
        assert queue.get(second.id).state == "approved"
    finally:
        queue.close()
