"""`clavis-mcp ui` opens the browser on a file only its user can read: nothing redeemable is on a command line.

Every local user can read every command line (``ps``, /proc/PID/cmdline). A launch code there was
raced: another user traded it for the session token before the browser started (review 28, M1).
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.server import Page, launch_file
from clavis_mcp.vault import AuditLog

from .browser import chromium
from .test_session import listener

EXE = str(Path(sys.executable).parent / "clavis-mcp")
pytestmark = pytest.mark.e2e


def private(path: Path) -> bool:
    """Ours, and readable, writable and listable by us alone (a 0600 file, a 0700 folder)."""
    info = path.lstat()
    wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
    return info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == wanted


@pytest.mark.parametrize(
    ("runtime_dir", "stop"),
    [(True, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["xdg-runtime-dir-ctrl-c", "private-tempdir-sigterm"],
)
def test_the_browsers_command_line_names_a_private_file_that_lands_on_a_working_page(
    known_log: AuditLog, tmp_path: Path, runtime_dir: bool, stop: signal.Signals
) -> None:
    argv_file = tmp_path / "argv"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$@" > {argv_file}\n')
    browser.chmod(0o700)
    env = {**os.environ, "BROWSER": str(browser), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    if runtime_dir:
        (tmp_path / "run").mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    else:
        env.pop("XDG_RUNTIME_DIR", None)
    process = subprocess.Popen([EXE, "ui", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)  # fmt: skip
    try:
        assert process.stdout is not None
        match = re.fullmatch(
            r"clavis-mcp ui: open (http://127\.0\.0\.1:([0-9]+))/#token=(\S+)\n", process.stdout.readline()
        )
        assert match
        origin, token = match.group(1), match.group(3)
        deadline = time.monotonic() + 30
        while not argv_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        argv = argv_file.read_text().strip()
        assert token not in argv and "code" not in argv and "127.0.0.1" not in argv
        assert argv.startswith("file:///")
        opened = Path(unquote(urlsplit(argv).path))
        expected = tmp_path / "run" / "clavis-mcp" if runtime_dir else tmp_path / "tmp"
        assert opened.parent == expected if runtime_dir else opened.parent.parent == expected
        assert private(opened) and private(opened.parent)
        with chromium() as chrome:
            tab = chrome.new_page()
            tab.goto(argv)
            tab.wait_for_selector("#chain")  # the page, fetched with the token the file's URL gave its script
            assert tab.url == origin + "/"  # which took it out of the address bar
    finally:
        process.send_signal(stop)
        process.communicate(timeout=20)
    assert not opened.exists()  # removed when the page stops
    assert opened.parent.exists() == runtime_dir  # a temporary folder of its own goes with it


def test_no_browser_writes_no_launch_file(known_log: AuditLog, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    process = subprocess.Popen([EXE, "ui", "--no-browser", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().startswith("clavis-mcp ui: open ")
        assert not (tmp_path / "run" / "clavis-mcp").exists()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)


def test_the_launch_file_holds_the_tokened_url_and_goes_when_the_block_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "clavis-mcp").mkdir(mode=0o755)  # left looser by something else of ours: tightened
    page = Page(4242, "t0ken")
    with launch_file(page) as path:
        assert path.parent == tmp_path / "clavis-mcp" and private(path) and private(path.parent)
        assert 'content="0;url=http://127.0.0.1:4242/#token=t0ken"' in path.read_text()
    assert not path.exists()


def test_a_runtime_folder_that_is_a_link_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    (tmp_path / "run").mkdir(mode=0o700)
    (tmp_path / "run" / "clavis-mcp").symlink_to(elsewhere)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with launch_file(Page(4242, "t0ken")) as path:
        assert list(elsewhere.iterdir()) == []
        assert path.parent.parent == tmp_path and path.parent.name.startswith("clavis-mcp-ui-")
        assert private(path) and private(path.parent)
    assert not path.parent.exists()


def test_a_navigation_another_site_made_gets_a_shell_that_takes_only_the_fragments_token(page: Page) -> None:
    """The launch file sends the browser here as another site would; that arrival gets no more than before."""
    navigation = {"Accept": "text/html", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    shell = httpx.get(page.origin + "/approvals", headers=navigation, trust_env=False)
    assert (
        shell.status_code == 200 and "<body data-shell data-elsewhere>" in shell.text and page.token not in shell.text
    )
    refused = [
        httpx.get(page.origin + "/approvals", headers={**navigation, SESSION_HEADER: page.token}, trust_env=False),
        httpx.get(page.origin + "/approvals.json", headers=navigation, trust_env=False),
        httpx.get(page.origin + "/approvals", headers={**navigation, "Sec-Fetch-Mode": "cors"}, trust_env=False),
        httpx.post(page.origin + "/approvals", headers=navigation, trust_env=False),
    ]
    assert [answer.status_code for answer in refused] == [403] * 4


def test_another_site_sending_the_tab_here_does_not_open_the_page_with_its_session(page: Page) -> None:
    lure = f'<script>location = "{page.origin}/approvals"</script>'.encode()
    with listener(lure) as (site, _), chromium() as browser:
        tab = browser.new_page()
        tab.goto(page.url)
        tab.wait_for_selector("#chain")  # the tab holds the session
        tab.goto(f"http://localhost:{site}/")  # another site, which sends it back to the page
        tab.wait_for_selector("text=open the URL that `clavis-mcp ui` printed")
        assert tab.locator("#queue").count() == 0
        tab.goto(page.origin + "/approvals")  # the person's own navigation still opens it
        tab.wait_for_selector("#queue-empty")
