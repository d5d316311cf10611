"""`clavis-mcp doctor`: every finding with its fix, a non-zero exit when something is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from tests.cli.test_install import CLONE_EXE, put_on_path
from tests.conftest import SECRET


@pytest.fixture
def config(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vault, its CA, and Claude Desktop configured for it; an installed clavis-mcp on PATH."""
    put_on_path(tmp_path / "tool-bin", monkeypatch)
    path = tmp_path / "claude_desktop_config.json"
    assert run("init", "--key-store", "keyfile")[0] == 0
    assert run("install", "claude-desktop", "--config", str(path))[0] == 0
    return path


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def doctor(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    code, output = run("doctor", "--config", str(config), "--json")
    return code, {check["name"]: check for check in json.loads(output)}


def test_healthy_setup_passes_every_check(config: Path) -> None:
    add = run("add", "echo", "--host", "api.echo.test", "--secret-stdin", stdin=SECRET)
    assert add[0] == 0, add[1]
    code, output = run("doctor", "--config", str(config))
    assert code == 0, output
    assert "all checks passed" in output and "FAIL" not in output
    for name in ("version", "claude desktop config", "configured executable", "executable on PATH", "vault",
                 "permissions", "key store", "local CA", "proxy", "service echo"):  # fmt: skip
        assert f"ok    {name}:" in output, name
    assert "started on 127.0.0.1:" in output and SECRET not in output


def test_missing_config_is_a_finding_with_the_install_command(config: Path) -> None:
    config.unlink()
    code, checks = doctor(config)
    assert code == 1
    assert checks["claude desktop config"]["ok"] is False
    assert checks["claude desktop config"]["fix"].startswith("clavis-mcp install claude-desktop")


def test_broken_config_names_line_and_column(config: Path) -> None:
    config.write_text('{"mcpServers": {"clavis": {"command": "x"},}}')
    code, checks = doctor(config)
    assert code == 1 and "line 1, column 43" in checks["claude desktop config"]["detail"]


def test_config_without_our_entry_is_a_finding(config: Path) -> None:
    config.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))
    code, checks = doctor(config)
    assert code == 1 and "no mcpServers.clavis entry" in checks["claude desktop config"]["detail"]


def test_entry_pointing_at_a_missing_program_or_another_vault_is_a_finding(config: Path, tmp_path: Path) -> None:
    entry = {"command": "/nowhere/clavis-mcp", "args": [], "env": {"CLAVIS_HOME": str(tmp_path / "elsewhere")}}
    config.write_text(json.dumps({"mcpServers": {"clavis": entry}}))
    code, checks = doctor(config)
    assert code == 1
    assert checks["configured executable"]["ok"] is False and checks["configured vault"]["ok"] is False


def test_missing_vault_says_run_init(config: Path, home: Path) -> None:
    shutil.rmtree(home)
    code, checks = doctor(config)
    assert code == 1 and checks["vault"]["fix"] == "clavis-mcp init"
    assert "proxy" not in checks  # not startable without a vault; not reported as a second problem


def test_loose_permissions_come_with_the_chmod_that_fixes_them(config: Path, home: Path) -> None:
    home.chmod(0o755)
    code, checks = doctor(config)
    assert code == 1 and checks["permissions"]["fix"] == f"chmod -R go-rwx '{home}'"


def test_missing_ca_is_a_finding(config: Path, home: Path) -> None:
    shutil.rmtree(home / "certs")
    code, checks = doctor(config)
    assert code == 1 and checks["local CA"]["ok"] is False
    assert checks["local CA"]["fix"].startswith("clavis-mcp certs show")


def test_expired_service_is_a_finding_with_the_rotate_fix(config: Path) -> None:
    add = run("add", "old", "--host", "api.old.test", "--secret-stdin", stdin=SECRET)
    assert add[0] == 0, add[1]
    from clavis_mcp.vault import Vault, clavis_home

    vault = Vault.open(clavis_home())
    try:
        with vault.store.atomic() as batch:  # an expiry in the past, as a dated key would have
            definition = batch.service("old")
            assert definition is not None
            batch.put_service("old", json.dumps({**json.loads(definition), "expires_at": 1.0}))
    finally:
        vault.close()
    code, checks = doctor(config)
    assert code == 1 and checks["service old"]["ok"] is False
    assert "clavis-mcp rotate old" in checks["service old"]["fix"]


def test_passphrase_vault_that_claude_desktop_cannot_unlock_is_a_finding(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAVIS_PASSPHRASE", "correct horse battery staple")
    put_on_path(tmp_path / "tool-bin", monkeypatch)
    assert run("init", "--key-store", "passphrase")[0] == 0
    config = tmp_path / "claude_desktop_config.json"
    assert run("install", "claude-desktop", "--config", str(config))[0] == 0
    code, checks = doctor(config)
    assert code == 1 and checks["unattended unlock"]["fix"] == "clavis-mcp rekey --key-store keychain"
    assert checks["vault"]["ok"] is True  # the doctor itself could unlock it (from the environment)


def test_entry_that_runs_the_clone_is_a_finding_pointing_to_the_install_guide(config: Path, home: Path) -> None:
    entry = {"command": CLONE_EXE, "args": [], "env": {"CLAVIS_HOME": str(home)}}
    config.write_text(json.dumps({"mcpServers": {"clavis": entry}}))
    code, checks = doctor(config)
    assert code == 1 and checks["configured executable"]["ok"] is False
    assert "source checkout" in checks["configured executable"]["detail"]
    assert "docs/install.md" in checks["configured executable"]["fix"]
