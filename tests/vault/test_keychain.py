"""The keychain key store against a real Secret Service: gnome-keyring in a private D-Bus session.

Each test runs a scenario from keychain_scenarios.py in a child process under
`dbus-run-session`, with a throwaway HOME and a keyring unlocked with a throwaway password,
so nothing touches the user's real keychain. The Debian packages come from
scripts/ensure-system-deps; without them these tests fail (they are never skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from clavis_mcp.vault import KeyStoreUnavailable
from clavis_mcp.vault.keys.keychain import real_keychain

SCENARIOS = Path(__file__).with_name("keychain_scenarios.py")
REPO = Path(__file__).resolve().parents[2]


def run_scenario(tmp_path: Path, scenario: str) -> dict[str, object]:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/ensure-system-deps as root"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "user"),
        "PYTHONPATH": str(REPO),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
    }
    for folder in ("user", "run"):
        (tmp_path / folder).mkdir(mode=0o700)
    script = (
        "echo -n throwaway | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; "
        f'exec "{sys.executable}" "{SCENARIOS}" {scenario} "{tmp_path / "home"}"'
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_vault_key_lives_in_the_real_keychain_and_in_no_file(tmp_path: Path) -> None:
    seen = run_scenario(tmp_path, "round_trip")
    assert seen == {
        "backend": "keyring.backends.SecretService",
        "revealed": True,
        "kind": "keychain",
        "in_keychain": True,
        "kek_in_files": False,
        "keyfile_exists": False,
    }


def test_locked_keychain_is_vault_locked_with_the_fix(tmp_path: Path) -> None:
    seen = run_scenario(tmp_path, "locked")
    assert seen["error"] == "VaultLocked"
    assert "locked" in str(seen["message"]) and "rekey" in str(seen["message"])


def test_deleted_keychain_entry_is_vault_locked_naming_the_entry(tmp_path: Path) -> None:
    seen = run_scenario(tmp_path, "deleted_entry")
    assert seen["error"] == "VaultLocked" and "not in the keychain" in str(seen["message"])


def test_rekey_from_keychain_to_keyfile_removes_the_keychain_entry(tmp_path: Path) -> None:
    assert run_scenario(tmp_path, "rekey_to_keyfile") == {"revealed": True, "kind": "keyfile", "old_entry_left": None}


class PlaintextLookalike(KeyringBackend):
    """Stands for keyrings.alt's PlaintextKeyring: a confident priority, but a file on disk."""

    priority = 5  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("a refused backend must never be written to")

    def delete_password(self, service: str, username: str) -> None:
        return None


@pytest.mark.parametrize(
    "backend", [fail.Keyring(), null.Keyring(), PlaintextLookalike()], ids=["fail", "null", "plaintext-lookalike"]
)
def test_backends_that_are_not_real_keychains_are_refused(backend: KeyringBackend) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        with pytest.raises(KeyStoreUnavailable, match="no OS keychain") as caught:
            real_keychain()
        assert type(backend).__name__ in str(caught.value)
    finally:
        keyring.set_keyring(previous)


def test_opening_a_keychain_vault_where_no_keychain_is_reachable_says_where_to_run(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from clavis_mcp.vault import Vault, VaultLocked

    home = tmp_path / "home"
    Vault.create(home).close()
    with closing(sqlite3.connect(home / "vault.db")) as conn, conn:
        conn.execute("UPDATE meta SET value='keychain' WHERE key='key_store'")
        vault_id = conn.execute("SELECT value FROM meta WHERE key='vault_id'").fetchone()[0]
        conn.execute(
            "UPDATE meta SET value=? WHERE key='key_params'",
            (json.dumps({"service": "clavis-mcp", "account": f"{vault_id}/0"}),),
        )
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(VaultLocked, match="desktop session"):
            Vault.open(home)
    finally:
        keyring.set_keyring(previous)
