"""Agents survive export -> import (issue 20 point 6): their names, service bindings and
``deny_other_hosts`` travel, their proxy tokens never do; the import makes new ones."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault
from clavis_mcp.vault.agents import agent_token, list_agents
from tests.cli.test_vault_cli import KEY, PASSPHRASE, ok


@pytest.fixture
def runner(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CLAVIS_SECRET_GITHUB", KEY)
    runner = CliRunner()
    ok(runner.invoke(main, ["init"]))
    args = ["add", "github", "--host", "api.github.com", "--auth", "bearer", "--secret-stdin"]
    ok(runner.invoke(main, args, input=KEY))
    return runner


def _agents(home: Path) -> dict[str, tuple[bool, tuple[str, ...]]]:
    with Vault.open(home) as vault:
        return {a.name: (a.deny_other_hosts, a.uses) for a in list_agents(vault)}


def _export_then_move(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[str, list[str]]:
    """Two agents are made and the vault exported; CLAVIS_HOME then points at a fresh vault."""
    tokens = [ok(runner.invoke(main, ["agent", "add", "builder", "--use", "github"])).stdout.strip()]
    tokens.append(ok(runner.invoke(main, ["agent", "add", "reader", "--deny-other-hosts"])).stdout.strip())
    text = ok(runner.invoke(main, ["export", *extra])).stdout
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(runner.invoke(main, ["init"]))
    return text, tokens


@pytest.mark.parametrize("extra", [(), ("--with-secrets",)], ids=["plain", "with-secrets"])
def test_agents_round_trip_with_new_tokens_and_none_in_the_file(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...]
) -> None:
    text, tokens = _export_then_move(runner, home, tmp_path, monkeypatch, *extra)
    assert all(token not in text for token in tokens)
    assert tomllib.loads(text)["agents"] == {
        "builder": {"deny_other_hosts": False, "uses": ["github"]},
        "reader": {"deny_other_hosts": True, "uses": []},
    }
    (tmp_path / "all.toml").write_text(text)
    imported = ok(runner.invoke(main, ["import", str(tmp_path / "all.toml")]))
    assert "imported agent builder (new token: clavis-mcp env --agent builder)" in imported.stdout
    second = tmp_path / "second"
    assert _agents(second) == {"builder": (False, ("github",)), "reader": (True, ())}
    with Vault.open(second) as vault:
        fresh = [agent_token(vault, name) for name in ("builder", "reader")]
    assert not set(fresh) & set(tokens)


def _deny(agents: dict[str, Any]) -> None:
    agents["reader"]["deny_other_hosts"] = False


def _uses(agents: dict[str, Any]) -> None:
    agents["builder"]["uses"] = []


def _added(agents: dict[str, Any]) -> None:
    agents["intruder"] = {"deny_other_hosts": False, "uses": ["github"]}


@pytest.mark.parametrize("tamper", [_deny, _uses, _added], ids=lambda f: f.__name__.strip("_"))
def test_an_edited_agent_binding_fails_the_seal(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Any
) -> None:
    text, _ = _export_then_move(runner, home, tmp_path, monkeypatch, "--with-secrets")
    document: dict[str, Any] = tomllib.loads(text)
    tamper(document["agents"])
    (tmp_path / "edited.toml").write_text(tomli_w.dumps(document))
    refused = runner.invoke(main, ["import", str(tmp_path / "edited.toml")])
    assert refused.exit_code == 1 and "nothing was imported" in refused.output
    assert "Traceback" not in refused.output
    assert _agents(tmp_path / "second") == {}
    (tmp_path / "untouched.toml").write_text(text)  # the same file as exported still opens
    ok(runner.invoke(main, ["import", str(tmp_path / "untouched.toml")]))
    assert set(_agents(tmp_path / "second")) == {"builder", "reader"}


def test_an_agent_that_already_exists_is_refused_and_nothing_is_imported(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, _ = _export_then_move(runner, home, tmp_path, monkeypatch)
    ok(runner.invoke(main, ["agent", "add", "reader"]))
    (tmp_path / "all.toml").write_text(text)
    refused = runner.invoke(main, ["import", str(tmp_path / "all.toml")])
    assert refused.exit_code == 1 and "agent 'reader' already exists" in refused.output
    assert "nothing was imported" in refused.output and "Traceback" not in refused.output
    assert _agents(tmp_path / "second") == {"reader": (False, ())}
    with Vault.open(tmp_path / "second") as vault:
        assert vault.list_services() == []


def test_a_vault_with_agents_and_no_services_round_trips(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(runner.invoke(main, ["remove", "github", "--yes"]))
    ok(runner.invoke(main, ["agent", "add", "lonely", "--deny-other-hosts"]))
    (tmp_path / "agents.toml").write_text(ok(runner.invoke(main, ["export"])).stdout)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(runner.invoke(main, ["init"]))
    ok(runner.invoke(main, ["import", str(tmp_path / "agents.toml")]))
    assert _agents(tmp_path / "second") == {"lonely": (True, ())}
