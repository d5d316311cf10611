"""`clavis-mcp install`: Claude Desktop's config edited safely, Claude Code and generic forms printed."""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.client_config import claude_desktop_config_path
from clavis_mcp.clavis_cli.main import main

CLONE_EXE = str(Path(sys.executable).parent / "clavis-mcp")  # the editable install inside the clone
OTHERS = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {"filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}},
    "zLast": [1, 2, {"nested": True}],
}


@pytest.fixture(autouse=True)
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clavis-mcp on PATH outside the clone, as pipx or uv would put it (here a wrapper of the clone's)."""
    return put_on_path(tmp_path / "tool-bin", monkeypatch)


def put_on_path(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder.mkdir(parents=True)
    program = folder / "clavis-mcp"
    program.write_text(f'#!/bin/sh\nexec {shlex.quote(CLONE_EXE)} "$@"\n')
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return str(program)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "Claude" / "claude_desktop_config.json"


def install(config: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["install", "claude-desktop", "--config", str(config), *extra])
    return result.exit_code, result.output


def expected_entry(home: Path) -> dict[str, object]:
    return {"command": str(Path(os.environ["PATH"].split(":")[0]) / "clavis-mcp"), "args": [],
            "env": {"CLAVIS_HOME": str(home)}}  # fmt: skip


def backups(config: Path) -> list[Path]:
    return sorted(config.parent.glob(f"{config.name}.*.bak"))


def test_missing_config_is_created_with_the_entry_private_to_the_user(config: Path, home: Path) -> None:
    code, output = install(config)
    assert code == 0 and f"created {config}" in output
    assert json.loads(config.read_text()) == {"mcpServers": {"clavis": expected_entry(home)}}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert backups(config) == []


def test_other_servers_and_keys_are_preserved_in_order_and_backed_up(config: Path, home: Path) -> None:
    config.parent.mkdir(parents=True)
    original = json.dumps(OTHERS, indent=4)
    config.write_text(original)
    code, output = install(config)
    assert code == 0 and f"updated {config}" in output
    written = json.loads(config.read_text())
    assert list(written) == list(OTHERS)
    assert written["mcpServers"]["filesystem"] == OTHERS["mcpServers"]["filesystem"]
    assert written["mcpServers"]["clavis"] == expected_entry(home)
    assert {k: v for k, v in written.items() if k != "mcpServers"} == {
        k: v for k, v in OTHERS.items() if k != "mcpServers"
    }
    [backup] = backups(config)
    assert backup.read_text() == original and str(backup) in output
    assert [p.name for p in config.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_outdated_entry_is_updated_and_an_identical_one_left_alone(config: Path, home: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"mcpServers": {"clavis": {"command": "/old/clavis-mcp"}}}))
    assert install(config)[0] == 0
    assert json.loads(config.read_text())["mcpServers"]["clavis"] == expected_entry(home)
    code, output = install(config)
    assert code == 0 and "nothing to change" in output
    assert len(backups(config)) == 1


TRAILING_COMMA = '{\n  "mcpServers": {\n    "a": {"command": "x"},\n  }\n}\n'
BROKEN = [
    (
        "trailing-comma",
        '{\n  "mcpServers": {\n    "a": {"command": "x"},\n  }\n}\n',
        "trailing comma before end of object at line 3, column 26",
    ),
    ("not-json", "mcpServers = 1\n", "line 1, column 1"),
    ("top-level-array", "[]", "JSON object at the top level"),
    ("servers-not-an-object", '{"mcpServers": []}', '"mcpServers" in'),
]


@pytest.mark.parametrize(("text", "message"), [r[1:] for r in BROKEN], ids=[r[0] for r in BROKEN])
def test_invalid_config_is_refused_untouched_naming_the_problem(
    config: Path, home: Path, text: str, message: str
) -> None:
    config.parent.mkdir(parents=True)
    config.write_text(text)
    code, output = install(config)
    assert code == 1 and message in output and "nothing was changed" in output
    assert config.read_text() == text and backups(config) == []


def test_print_shows_the_entry_and_writes_nothing(config: Path, home: Path) -> None:
    code, output = install(config, "--print")
    assert code == 0 and json.loads(output) == {"mcpServers": {"clavis": expected_entry(home)}}
    assert not config.exists()


def test_generic_print_is_the_mcp_servers_json_for_any_client(home: Path) -> None:
    result = CliRunner().invoke(main, ["install", "--print"])
    assert result.exit_code == 0 and json.loads(result.output) == {"mcpServers": {"clavis": expected_entry(home)}}


def test_claude_code_form_is_printed_as_a_runnable_command(home: Path) -> None:
    result = CliRunner().invoke(main, ["install", "claude-code", "--print"])
    assert result.exit_code == 0
    program = expected_entry(home)["command"]
    assert shlex.split(result.output) == ["claude", "mcp", "add", "clavis", "--scope", "user",
                                          "-e", f"CLAVIS_HOME={home}", "--", program]  # fmt: skip


def test_claude_code_without_claude_on_path_says_what_to_run(home: Path, installed: str) -> None:
    result = CliRunner().invoke(main, ["install", "claude-code"])
    assert result.exit_code == 1 and "`claude` command is not on PATH" in result.output
    assert "claude mcp add clavis" in result.output


PLATFORMS = [
    ("macos", "darwin", {}, "Library/Application Support/Claude/claude_desktop_config.json"),
    ("windows", "win32", {"APPDATA": "/appdata"}, "/appdata/Claude/claude_desktop_config.json"),
    ("windows-without-appdata", "win32", {}, "AppData/Roaming/Claude/claude_desktop_config.json"),
    ("linux", "linux", {}, ".config/Claude/claude_desktop_config.json"),
    ("linux-xdg", "linux", {"XDG_CONFIG_HOME": "/xdg"}, "/xdg/Claude/claude_desktop_config.json"),
]


@pytest.mark.parametrize(("platform", "env", "where"), [r[1:] for r in PLATFORMS], ids=[r[0] for r in PLATFORMS])
def test_config_path_per_operating_system(platform: str, env: dict[str, str], where: str) -> None:
    home = Path("/home/user")
    expected = Path(where) if where.startswith("/") else home / where
    assert claude_desktop_config_path(platform, env, home) == expected


def test_installed_entry_starts_a_working_server(config: Path, home: Path) -> None:
    """The written command and env are enough on their own: run them the way Claude Desktop would."""
    import subprocess

    assert install(config)[0] == 0
    entry = json.loads(config.read_text())["mcpServers"]["clavis"]
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    env = {"PATH": os.defpath, **entry["env"]}
    proc = subprocess.run([entry["command"], *entry["args"]], input=json.dumps(request) + "\n", capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["result"]["serverInfo"]["name"] == "clavis-mcp"


def test_from_the_clone_alone_it_refuses_and_points_to_the_install_guide(
    config: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clone's editable install breaks Claude Desktop when the clone moves or `make clean` runs."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    code, output = install(config)
    assert code == 1 and "docs/install.md" in output and "source checkout" in output and "pipx install ." in output
    assert "Traceback" not in output and not config.exists()


def test_an_installed_clavis_mcp_on_path_is_preferred_to_the_clone(config: Path, home: Path, installed: str) -> None:
    assert install(config)[0] == 0
    assert json.loads(config.read_text())["mcpServers"]["clavis"]["command"] == installed


def test_an_explicit_command_inside_the_clone_is_written_with_a_warning(config: Path, home: Path) -> None:
    result = CliRunner().invoke(main, ["install", "claude-desktop", "--config", str(config), "--command", CLONE_EXE])
    assert result.exit_code == 0 and "warning:" in result.output and "source checkout" in result.output
    assert json.loads(config.read_text())["mcpServers"]["clavis"]["command"] == CLONE_EXE


USER_ENV = {"CLAVIS_UPSTREAM_CA": "/etc/ssl/corp.pem", "CLAVIS_CALL_TIMEOUT": "30",
            "CLAVIS_PASSPHRASE": "user-typed-passphrase-4f9e"}  # fmt: skip


def test_reinstall_keeps_the_variables_the_user_added_and_names_what_changed(
    config: Path, home: Path, tmp_path: Path
) -> None:
    config.parent.mkdir(parents=True)
    old = {"command": "/old/place/clavis-mcp", "args": [], "env": {"CLAVIS_HOME": str(home), **USER_ENV},
           "disabled": False}  # fmt: skip
    config.write_text(json.dumps({"mcpServers": {"clavis": old}}))
    code, output = install(config)
    assert code == 0, output
    entry = json.loads(config.read_text())["mcpServers"]["clavis"]
    assert entry["env"] == {"CLAVIS_HOME": str(home), **USER_ENV} and entry["disabled"] is False
    assert entry["command"] == expected_entry(home)["command"]
    assert "/old/place/clavis-mcp" in output
    assert "kept env CLAVIS_UPSTREAM_CA, CLAVIS_CALL_TIMEOUT, CLAVIS_PASSPHRASE" in output
    assert USER_ENV["CLAVIS_PASSPHRASE"] not in output  # values are never printed
    assert install(config) == (0, f"{config} already has this entry; nothing to change\n")


def test_env_option_adds_a_variable_and_says_so(config: Path, home: Path) -> None:
    assert install(config)[0] == 0
    code, output = install(config, "--env", "CLAVIS_CALL_TIMEOUT=30", "--env", "CLAVIS_UPSTREAM_CA=/etc/ca.pem")
    assert code == 0 and "env CLAVIS_CALL_TIMEOUT added" in output and "env CLAVIS_UPSTREAM_CA added" in output
    env = json.loads(config.read_text())["mcpServers"]["clavis"]["env"]
    assert env == {"CLAVIS_HOME": str(home), "CLAVIS_CALL_TIMEOUT": "30", "CLAVIS_UPSTREAM_CA": "/etc/ca.pem"}
    code, output = install(config, "--env", "CLAVIS_CALL_TIMEOUT=20")
    assert code == 0 and "env CLAVIS_CALL_TIMEOUT changed" in output
    assert json.loads(config.read_text())["mcpServers"]["clavis"]["env"]["CLAVIS_UPSTREAM_CA"] == "/etc/ca.pem"


@pytest.mark.parametrize("pair", ["NOVALUE", "1BAD=x", "=x"], ids=["no-equals", "bad-name", "empty-name"])
def test_malformed_env_option_is_one_line_naming_the_form(config: Path, home: Path, pair: str) -> None:
    code, output = install(config, "--env", pair)
    assert code == 1 and "KEY=VALUE" in output and "Traceback" not in output and not config.exists()
