"""Chromium from the system (Debian's package), driven by Playwright's Python package: no download."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, ConsoleMessage, sync_playwright

CANDIDATES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no system chromium: run ./scripts/ensure-system-deps (Debian package `chromium`)")


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            browser.close()


class ConsoleProblems(list[str]):
    """Errors the page logs (a CSP violation is one): a page that works sends none."""

    def __call__(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.append(message.text)
