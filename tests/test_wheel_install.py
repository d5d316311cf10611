"""clavis-mcp installed for real use: the wheel from `make dist` (scripts/build-dist) in a fresh
virtual environment outside the clone, then the MCP server started from there by a real MCP
client over stdio, `install claude-desktop` writing that installed program, and `doctor`
agreeing. Dependencies come from the package index pip is configured with (here a local
mirror), as for a user; the clone's venv lends nothing but pip itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@dataclass
class Installed:
    venv: Path
    exe: Path
    env: dict[str, str]  # no clone on PATH, cwd-independent, a vault of its own

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *args], env=self.env, cwd=self.venv.parent, capture_output=True,
                              text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed")
    assert ROOT not in base.parents  # outside the clone
    built = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-dist"), str(base / "dist")],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    sdist, wheel = (Path(line) for line in built.stdout.split())
    assert sdist.name.endswith(".tar.gz") and wheel.suffix == ".whl"
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)  # the interpreter behind the clone's venv
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                          "--quiet", str(wheel)], capture_output=True, text=True, timeout=800)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    links = base / "local-bin"  # as pipx and uv link their tools into ~/.local/bin
    links.mkdir()
    (links / "clavis-mcp").symlink_to(venv / "bin" / "clavis-mcp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAVIS_", "VIRTUAL_ENV", "PYTHON"))}
    env |= {"PATH": f"{links}:/usr/bin:/bin", "CLAVIS_HOME": str(base / "home")}
    yield Installed(venv, venv / "bin" / "clavis-mcp", env)


def test_the_installed_program_runs_from_its_own_environment(installed: Installed) -> None:
    from importlib.metadata import version

    out = installed.cli("--version")
    assert out.returncode == 0 and out.stdout == version("clavis-mcp") + "\n"
    where = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                            "import clavis_mcp.clavis_cli as c, clavis_mcp.proxy.agent_env as a; "
                            "print(c.__file__); print(a.NODE_PRELOAD.is_file())"],
                           env=installed.env, capture_output=True, text=True, timeout=60)  # fmt: skip
    module, preload = where.stdout.split()
    assert Path(module).is_relative_to(installed.venv) and preload == "True"  # the Node preload ships


@pytest.mark.anyio
async def test_an_mcp_client_lists_the_tools_of_the_installed_server(installed: Installed, tmp_path: Path) -> None:
    assert installed.cli("init", "--key-store", "keyfile").returncode == 0
    params = StdioServerParameters(command=str(installed.exe), args=[], env=installed.env, cwd=str(tmp_path))
    with (tmp_path / "stderr.log").open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = await client.list_tools()
            listed = await client.call_tool("list_services", {})
    assert {t.name for t in tools.tools} >= {"list_services", "get_credentials", "check_credential_status",
                                             "call_service"}  # fmt: skip
    assert not listed.is_error, listed.content


def test_install_claude_desktop_writes_the_installed_program_and_doctor_agrees(
    installed: Installed, tmp_path: Path
) -> None:
    config = tmp_path / "claude_desktop_config.json"
    if not (Path(installed.env["CLAVIS_HOME"]) / "vault.db").exists():
        assert installed.cli("init", "--key-store", "keyfile").returncode == 0
    done = installed.cli("install", "claude-desktop", "--config", str(config))
    assert done.returncode == 0, done.stderr
    entry = json.loads(config.read_text())["mcpServers"]["clavis"]
    assert entry["command"] == str(installed.venv.parent / "local-bin" / "clavis-mcp")  # the link on PATH
    doctor = installed.cli("doctor", "--config", str(config), "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["configured executable"]["ok"] is True, checks["configured executable"]
    assert "not the clavis-mcp running" not in checks["configured executable"]["detail"]
    assert subprocess.run([entry["command"], "--version"], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                          timeout=60).returncode == 0  # what Claude Desktop runs, with none of our PATH  # fmt: skip
