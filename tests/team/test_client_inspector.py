"""The MCP Inspector CLI (an independent client, the TypeScript SDK) reading a Claude-Desktop-style
config file with the original team entry, and driving clavis-mcp against the real team server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.team.conftest import TeamServer, add_echo, new_key
from tests.team.test_mcp_client_e2e import TOOLS, desktop_config
from tests.team.tls_front import tls_front

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
INSPECTOR = ROOT / "tests" / "node" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
BIN = str(Path(sys.executable).parent)


def inspector(config: Path, method: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env = {k: v for k, v in env.items() if not k.startswith("CLAVIS_")}
    done = subprocess.run(
        [str(INSPECTOR), "--cli", "--config", str(config), "--server", "clavis", "--method", method, *args],
        capture_output=True, text=True, timeout=90, cwd=INSPECTOR.parents[2], env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done, json.JSONDecoder().raw_decode(done.stdout.lstrip())[0]


def test_the_inspector_runs_the_original_team_entry_from_a_config_file(
    server: TeamServer, upstream: EchoUpstream, upstream_ca: trustme.CA, tmp_path: Path
) -> None:
    assert INSPECTOR.exists(), f"{INSPECTOR} is missing: run scripts/ensure-node-deps (make test does)"
    add_echo(server, upstream)
    key = new_key(server, "inspector", ["echo"])
    with tls_front(upstream_ca, int(server.url.rsplit(":", 1)[1])) as front:
        config = desktop_config(front.url, key)
        config["mcpServers"]["clavis"]["env"].update(
            {"CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp_path / "ca.pem")), "HOME": str(tmp_path / "home"),
             "CLAVIS_HOME": str(tmp_path / "home" / "clavis")}
        )  # fmt: skip
        path = tmp_path / "claude_desktop_config.json"
        path.write_text(json.dumps(config))
        _, listed = inspector(path, "tools/list")
        _, services = inspector(path, "tools/call", "--tool-name", "list_services")
        done, called = inspector(
            path, "tools/call", "--tool-name", "call_service", "--tool-arg", "service_name=echo", "method=GET",
            f"url=https://127.0.0.1:{upstream.port}/v1/inspected",
        )  # fmt: skip
    assert [t["name"] for t in listed["tools"]] == TOOLS
    assert [s["name"] for s in services["structuredContent"]["services"]] == ["echo"]
    assert called["structuredContent"]["status"] == 200 and called["structuredContent"]["audit_id"]
    assert "REDACTED" in called["structuredContent"]["body"]["headers"]["Authorization"]
    assert any(r.path == "/v1/inspected" for r in upstream.received)
    assert SECRET not in done.stdout
    assert not (tmp_path / "home" / "clavis").exists()
