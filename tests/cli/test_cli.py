from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from tests.conftest import SECRET

EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture
def runner(home: Path) -> CliRunner:
    return CliRunner()


def test_version_prints_the_bare_version_number_alone() -> None:
    from importlib.metadata import version

    out = subprocess.run([EXE, "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == version("clavis-mcp") + "\n"


HEAVY = ("mcp", "mitmproxy", "clavis_mcp.mcp_front", "clavis_mcp.proxy.embedded", "clavis_mcp.clavis_cli.serve")
LOADED = """
import sys
from clavis_mcp.clavis_cli.entry import main
sys.argv = ["clavis-mcp", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("LOADED", *sorted(sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["audit", "--help"], ["env", "--help"]],
                         ids=["version", "help", "verb-help", "env-help"])  # fmt: skip
def test_version_and_help_import_neither_the_mcp_server_nor_mitmproxy(args: list[str]) -> None:
    """Every command paid for the MCP server's import (about 1 s of CPU): these only need click."""
    out = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    loaded = set(out.stderr.rpartition("LOADED ")[2].split())
    assert not {m for m in loaded if m in HEAVY or m.startswith(tuple(f"{h}." for h in HEAVY))}


def test_init_add_list_remove(runner: CliRunner, home: Path) -> None:
    assert runner.invoke(main, ["init"]).exit_code == 0
    added = runner.invoke(main, ["add", "openai", "--host", "api.openai.com", "--secret-stdin"], input=SECRET)
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["list", "--json"])
    rows = json.loads(listed.output)
    assert rows[0]["name"] == "openai" and rows[0]["hosts"] == ["api.openai.com"]
    assert SECRET not in added.output + listed.output
    assert runner.invoke(main, ["remove", "openai", "--yes"]).exit_code == 0
    assert json.loads(runner.invoke(main, ["list", "--json"]).output) == []


def test_secret_from_environment_variable(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(main, ["init"])
    monkeypatch.setenv("MY_KEY", SECRET)
    result = runner.invoke(
        main, ["add", "svc", "--host", "api.x.test", "--header", "x-api-key: {secret}", "--secret-env", "MY_KEY"]
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output


def test_secret_is_never_taken_from_argv(runner: CliRunner) -> None:
    runner.invoke(main, ["init"])
    result = runner.invoke(main, ["add", "svc", "--host", "api.x.test", "--secret", SECRET])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "Bad Name", "--host", "a.test"], "invalid service name"),
        (["add", "svc", "--host", "https://a.test/x"], "host[:port] only"),
        (["add", "svc", "--host", "a.test", "--header", "Authorization: Bearer"], "{secret} exactly once"),
        (["remove", "ghost", "--yes"], "unknown service 'ghost'"),
    ],
    ids=["bad-name", "url-as-host", "template-without-placeholder", "remove-unknown"],
)
def test_bad_input_is_one_clear_line_and_exit_1(runner: CliRunner, args: list[str], message: str) -> None:
    runner.invoke(main, ["init"])
    result = runner.invoke(main, [*args, "--secret-stdin"] if args[0] == "add" else args, input=SECRET)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_commands_before_init_say_how_to_init(runner: CliRunner) -> None:
    result = runner.invoke(main, ["list"])
    assert result.exit_code == 1 and "clavis-mcp init" in result.output


def test_crlf_in_secret_is_refused(runner: CliRunner) -> None:
    runner.invoke(main, ["init"])
    result = runner.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input="sk-abc\r\nX-Evil: 1")
    assert result.exit_code == 1 and "control characters" in result.output


def test_every_verb_is_registered_under_the_module_that_defines_it() -> None:
    """The lazy verb table in main.py must match what each module exports, both ways."""
    import importlib

    from clavis_mcp.clavis_cli.main import VERBS

    for module_name, names in VERBS.items():
        module = importlib.import_module(f"clavis_mcp.clavis_cli.{module_name}")
        assert [c.name for c in module.COMMANDS] == list(names), module_name


def test_the_stdio_path_imports_no_verb_module() -> None:
    code = "import sys, clavis_mcp.clavis_cli.main; print(sorted(m for m in sys.modules if m.endswith('_commands')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
def test_no_arguments_on_a_terminal_says_on_stderr_what_it_is_then_serves(home: Path) -> None:
    import pty

    from clavis_mcp.clavis_cli.serve import TERMINAL_NOTICE

    controller, terminal = pty.openpty()
    try:
        with subprocess.Popen([EXE], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
            try:
                assert p.stderr is not None
                assert p.stderr.readline().strip() == TERMINAL_NOTICE
                assert p.poll() is None  # then it serves, waiting for messages
            finally:
                p.terminate()
                p.wait(timeout=20)
    finally:
        os.close(terminal)
        os.close(controller)
    assert "speaks MCP" in TERMINAL_NOTICE and "clavis-mcp install claude-desktop" in TERMINAL_NOTICE


@pytest.mark.e2e
def test_a_locked_passphrase_vault_tells_the_client_which_command_to_run_in_a_terminal(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAVIS_PASSPHRASE", "correct horse battery staple")
    assert CliRunner().invoke(main, ["init", "--key-store", "passphrase"]).exit_code == 0
    env = {k: v for k, v in os.environ.items() if k != "CLAVIS_PASSPHRASE"}
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    call = {"name": "list_services", "arguments": {}}
    messages = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call}]  # fmt: skip
    proc = subprocess.run([EXE], input="".join(json.dumps(m) + "\n" for m in messages), capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    [answer] = [m for m in map(json.loads, proc.stdout.splitlines()) if m.get("id") == 2]
    text = answer["result"]["content"][0]["text"]
    assert answer["result"]["isError"] is True
    assert "In a terminal, run `clavis-mcp rekey --key-store keychain`" in text and "CLAVIS_PASSPHRASE" in text


def test_top_level_help_lists_each_verb_as_click_would_without_importing_the_verbs() -> None:
    import click

    ctx = click.Context(main, info_name="clavis-mcp")
    ours, clicks = ctx.make_formatter(), ctx.make_formatter()
    main.format_commands(ctx, ours)
    click.Group.format_commands(main, ctx, clicks)  # imports every verb module for its docstring
    assert ours.getvalue() == clicks.getvalue() and "run" in ours.getvalue()
    out = subprocess.run([sys.executable, "-c", LOADED, "--help"], capture_output=True, text=True, timeout=30)
    assert not [m for m in out.stderr.rpartition("LOADED ")[2].split() if m.endswith("_commands")]
