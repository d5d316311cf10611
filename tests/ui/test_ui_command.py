"""`clavis-mcp ui` as a user runs it: a subprocess that prints its URL and serves on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.vault import AuditLog

from .conftest import TOTAL

EXE = str(Path(sys.executable).parent / "clavis-mcp")
pytestmark = pytest.mark.e2e


def test_the_command_prints_a_tokened_loopback_url_and_serves_the_page(known_log: AuditLog) -> None:
    process = subprocess.Popen([EXE, "ui", "--no-browser", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"clavis-mcp ui: open (http://127\.0\.0\.1:([0-9]+)/#token=([A-Za-z0-9_-]{43}))\n", line)
        assert match, line
        port, token = int(match.group(2)), match.group(3)
        with httpx.Client(trust_env=False) as client:
            # The socket listens before the URL is printed; the page's script sends the fragment's token.
            page = client.get(f"http://127.0.0.1:{port}/", headers={SESSION_HEADER: token})
            assert page.status_code == 200 and f'data-total="{TOTAL}"' in page.text
            assert httpx.get(f"http://127.0.0.1:{port}/", trust_env=False).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert match.group(3) not in err  # the token is printed once, on stdout, and logged nowhere


def test_a_busy_port_is_one_clear_line(known_log: AuditLog) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([EXE, "ui", "--no-browser", "--port", str(port)], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "choose another --port, or 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_approvals_without_a_home_is_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "CLAVIS_HOME": str(tmp_path / "nowhere")}
    done = subprocess.run([EXE, "approvals"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and "no clavis-mcp home at" in done.stderr and "clavis-mcp init" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "nowhere").exists()
