"""Issue 20.14: every verb, against each fault (a full disk, a read-only vault folder, missing
files, a locked vault), stops with a line that names the cause and the fix, exits non-zero when
it could not do its work, and never prints a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault.keys.passphrase import ENV_VAR as PASSPHRASE_ENV
from tests.faults.conftest import fill

KEY = "sk-ant-api03-faultsfaultsfaultsfaults0123"
VERBS: list[tuple[str, ...]] = [
    ("init",),
    ("rekey",),
    ("connectors",),
    ("add", "second", "--connector", "anthropic", "--secret-stdin"),
    ("list",),
    ("show", "claude"),
    ("rotate", "claude", "--secret-stdin"),
    ("edit", "claude", "--host", "api.anthropic.com"),
    ("remove", "claude", "--yes"),
    ("export",),
    ("import", "services.toml"),
    ("env",),
    ("certs", "show"),
    ("certs", "bundle"),
    ("agent", "add", "bot"),
    ("agent", "list"),
    ("doctor",),
    ("mcp-settings", "claude", "--confirm-writes"),
    ("budget", "claude", "--max-requests", "5"),
    ("oauth", "status"),
    ("audit",),
    ("audit", "verify"),
    ("audit", "stats"),
    ("audit", "acknowledge-loss", "--yes"),
    ("audit", "repair", "--yes"),
]


def full_disk(home: Path, disk: Path) -> None:
    fill(disk)


def read_only(home: Path, disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)


def missing_vault(home: Path, disk: Path) -> None:
    for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
        (home / name).unlink(missing_ok=True)


def missing_audit(home: Path, disk: Path) -> None:
    for path in home.glob("audit.jsonl*"):
        path.unlink()


def missing_key_file(home: Path, disk: Path) -> None:
    for path in home.glob("vault*.key"):
        path.unlink()


def missing_certs(home: Path, disk: Path) -> None:
    for path in (home / "certs").glob("*"):
        path.unlink()


FAULTS: dict[str, Callable[[Path, Path], None]] = {
    "full disk": full_disk,
    "read-only folder": read_only,
    "missing vault": missing_vault,
    "missing audit log": missing_audit,
    "missing key file": missing_key_file,
    "missing CA files": missing_certs,
}


@pytest.fixture
def vault_with_a_service(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("HOME", str(home.parent / "user"))
    monkeypatch.chdir(home.parent)
    runner = CliRunner()
    for args in (["init", "--key-store", "keyfile"], ["add", "claude", "--connector", "anthropic", "--secret-stdin"]):
        result = runner.invoke(main, args, input=KEY)
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["export", "-o", "services.toml"])
    assert result.exit_code == 0, result.output
    return runner


def _reported(output: str) -> bool:
    """A failure's last line is an error line (ours, or click's usage error), or doctor's tally."""
    lines = output.strip().splitlines()
    last = lines[-1] if lines else ""
    return last.startswith(("error:", "Error:", "BROKEN")) or last.endswith("problem(s) found")


def run_all(runner: CliRunner) -> list[str]:
    problems = []
    for args in VERBS:
        result = runner.invoke(main, list(args), input=KEY + "\n")
        shown = f"{' '.join(args)} -> exit {result.exit_code}: {result.output.strip()[-300:]!r}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problems.append(f"{shown} raised {type(result.exception).__name__}: {result.exception}")
        elif "Traceback" in result.output or KEY in result.output:
            problems.append(shown)
        elif result.exit_code != 0 and not _reported(result.output):
            problems.append(f"{shown}: a failure without an error line")
    return problems


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_verb_names_the_cause_of_a_fault_without_a_traceback(
    vault_with_a_service: CliRunner, home: Path, disk: Path, fault: str
) -> None:
    FAULTS[fault](home, disk)
    try:
        problems = run_all(vault_with_a_service)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=False)
    assert not problems, "\n".join(problems)


def test_every_verb_on_a_locked_vault_says_how_to_unlock_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "locked"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(PASSPHRASE_ENV, "a passphrase for the fault tests")
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--key-store", "passphrase"]).exit_code == 0
    added = runner.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY)
    assert added.exit_code == 0
    assert runner.invoke(main, ["export", "-o", "services.toml"]).exit_code == 0
    monkeypatch.delenv(PASSPHRASE_ENV)
    problems = run_all(runner)
    assert not problems, "\n".join(problems)


def test_a_read_only_vault_folder_is_not_called_damaged(vault_with_a_service: CliRunner, disk: Path) -> None:
    read_only(disk, disk)
    try:
        result = vault_with_a_service.invoke(main, ["list"])
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert result.exit_code == 1
    assert "read-only file system" in result.output and "not damaged" in result.output
    assert "restore it from a backup" not in result.output
