"""Hidden prompts on a real terminal: what a person types is never echoed or printed.

Each command runs in a pseudo-terminal that is its controlling terminal (as in a shell), so
click's hidden prompt and getpass (which opens /dev/tty) behave as they do for a user.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "clavis-mcp")
PASSPHRASE = "typed passphrase 4 tests"
SECRET = "sk-typed-0123456789abcdefghijk"
# Become the session's controlling terminal, then run clavis-mcp on it.
LAUNCHER = "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"


def converse(args: list[str], env: dict[str, str], script: list[tuple[str, str]]) -> tuple[int, str]:
    """Run ``clavis-mcp args`` on a terminal, answering each expected prompt; return (exit code, screen)."""
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, EXE, *args],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + 60
    try:
        for expected, answer in script:
            while expected.encode() not in screen:
                screen += _read(primary, deadline)
            os.write(primary, answer.encode() + b"\r")
        while True:
            chunk = _read(primary, deadline)
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(primary)
    return process.wait(timeout=30), screen.decode(errors="replace")


def _read(fd: int, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    assert remaining > 0, "the command did not print the expected prompt in time"
    ready, _, _ = select.select([fd], [], [], remaining)
    assert ready, "the command did not print the expected prompt in time"
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the command exited and closed the terminal
        return b""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLAVIS_")}
    return {**clean, "CLAVIS_HOME": str(tmp_path / "home"), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def test_typed_passphrase_and_secret_are_hidden_and_work(env: dict[str, str]) -> None:
    code, screen = converse(
        ["init", "--key-store", "passphrase"],
        env,
        [("new vault passphrase:", PASSPHRASE), ("repeat the passphrase:", PASSPHRASE)],
    )
    assert code == 0, screen
    code, added = converse(
        ["add", "svc", "--host", "api.x.test"],
        env,
        [("vault passphrase:", PASSPHRASE), ("Secret:", SECRET)],
    )
    assert code == 0 and "added svc" in added, added
    code, removed = converse(["remove", "svc"], env, [("vault passphrase:", PASSPHRASE), ("[y/N]", "y")])
    assert code == 0 and "removed svc" in removed, removed
    for text in (screen, added, removed):
        assert PASSPHRASE not in text and SECRET not in text


def test_mistyped_confirmation_creates_no_vault(env: dict[str, str], tmp_path: Path) -> None:
    code, screen = converse(
        ["init", "--key-store", "passphrase"],
        env,
        [("new vault passphrase:", PASSPHRASE), ("repeat the passphrase:", PASSPHRASE + "x")],
    )
    assert code == 2 and "differ" in screen
    assert not (tmp_path / "home" / "vault.db").exists()


def test_wrong_typed_passphrase_is_refused_without_echo(env: dict[str, str]) -> None:
    converse(["init", "--key-store", "passphrase"], env, [("passphrase:", PASSPHRASE), ("repeat", PASSPHRASE)])
    code, screen = converse(["list"], env, [("vault passphrase:", "not it at all")])
    assert code == 1 and "wrong passphrase" in screen and "not it at all" not in screen
