"""`clavis-mcp login` against the real team server keeps the login in a real Secret Service
(gnome-keyring in a private D-Bus session), and in no file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.team.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer

pytestmark = pytest.mark.e2e
SCENARIO = Path(__file__).with_name("keychain_login_scenario.py")
REPO = Path(__file__).resolve().parents[2]


def test_login_is_kept_in_the_real_keychain_and_in_no_file(server: TeamServer, tmp_path: Path) -> None:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/ensure-system-deps as root"
    for folder in ("user", "run"):
        (tmp_path / folder).mkdir(mode=0o700)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "user"), "PYTHONPATH": str(REPO),
           "XDG_RUNTIME_DIR": str(tmp_path / "run")}  # fmt: skip
    script = (
        "echo -n throwaway | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; "
        f'exec "{sys.executable}" "{SCENARIO}" "{server.url}" "{ADMIN_EMAIL}" "{tmp_path / "home"}"'
    )
    result = subprocess.run(["dbus-run-session", "--", "sh", "-c", script], env=env, input=ADMIN_PASSWORD + "\n",
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"exit": 0, "backend": "keyring.backends.SecretService", "where": "keychain",
                    "in_keychain": True, "token_in_files": False, "said_keychain": True}  # fmt: skip
