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

EXE = str(Path(sys.executable).parent / "clavis-mcp")
OTHERS = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {"filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}},
    "zLast": [1, 2, {"nested": True}],
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "Claude" / "claude_desktop_config.json"


def install(config: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["install", "claude-desktop", "--config", str(config), *extra])
    return result.exit_code, result.output


def expected_entry(home: Path) -> dict[str, object]:
    return {"command": EXE, "args": [], "env": {"CLAVIS_HOME": str(home)}}


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
    assert shlex.split(result.output) == ["claude", "mcp", "add", "clavis", "--scope", "user",
                                          "-e", f"CLAVIS_HOME={home}", "--", EXE]  # fmt: skip


def test_claude_code_without_claude_on_path_says_what_to_run(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
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
