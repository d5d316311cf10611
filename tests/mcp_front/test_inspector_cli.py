"""The MCP Inspector CLI (npm, pinned in tests/node/inspector) driving the real `clavis-mcp` over stdio.

An independent client implementation (the TypeScript SDK) must see the same four tools and
get a structured result from each. The Inspector is run from its locally installed binary
(scripts/ensure-node-deps installs it); nothing is downloaded at test time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
INSPECTOR = ROOT / "tests" / "node" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"
EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture(scope="module")
def upstream(upstream_ca: trustme.CA) -> Iterator[EchoUpstream]:
    with EchoUpstream.start(upstream_ca) as server:
        yield server


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory, upstream_ca: trustme.CA, upstream: EchoUpstream) -> list[str]:
    """A vault with service ``echo``; the server's environment as Inspector ``-e`` arguments."""
    assert INSPECTOR.exists(), f"{INSPECTOR} is missing: run scripts/ensure-node-deps (make test does)"
    work = tmp_path_factory.mktemp("inspector")
    env = {"CLAVIS_HOME": str(work / "home"), "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, work / "ca.pem"))}
    add = ["add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin"]
    for args, stdin in ((["init", "--key-store", "keyfile"], None), (add, SECRET)):
        done = subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip
        assert done.returncode == 0, done.stderr
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def inspector(server_env: list[str], method: str, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    done = subprocess.run(
        [str(INSPECTOR), "--cli", "--method", method, *args, *server_env, "--", EXE],
        capture_output=True, text=True, timeout=90, cwd=INSPECTOR.parents[2],
    )  # fmt: skip
    decoder = json.JSONDecoder()
    return done, decoder.raw_decode(done.stdout.lstrip())[0]


def test_inspector_lists_the_four_tools_in_order_with_schemas(server_env: list[str]) -> None:
    done, out = inspector(server_env, "tools/list")
    assert done.returncode == 0, done.stderr
    assert [t["name"] for t in out["tools"]] == ["list_services", "get_credentials", "check_credential_status",
                                                 "call_service"]  # fmt: skip
    assert all(t["outputSchema"] and t["annotations"] and t["title"] for t in out["tools"])


def test_inspector_calls_list_services(server_env: list[str]) -> None:
    done, out = inspector(server_env, "tools/call", "--tool-name", "list_services")
    assert done.returncode == 0, done.stderr
    assert out["structuredContent"]["services"][0]["name"] == "echo"
    assert SECRET not in done.stdout


def test_inspector_calls_get_credentials(server_env: list[str]) -> None:
    done, out = inspector(server_env, "tools/call", "--tool-name", "get_credentials", "--tool-arg", "service_name=echo")
    assert done.returncode == 0, done.stderr
    assert out["structuredContent"]["masked"].endswith(SECRET[-4:]) and SECRET not in done.stdout


def test_inspector_calls_check_credential_status(server_env: list[str]) -> None:
    done, out = inspector(server_env, "tools/call", "--tool-name", "check_credential_status",
                          "--tool-arg", "service_name=echo", "--tool-arg", "live=false")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out["structuredContent"]["state"] == "unknown"


def test_inspector_calls_call_service_and_sees_the_credential_redacted(
    server_env: list[str], upstream: EchoUpstream
) -> None:
    url = f"https://127.0.0.1:{upstream.port}/v1/models"
    done, out = inspector(server_env, "tools/call", "--tool-name", "call_service", "--tool-arg", "service_name=echo",
                          "--tool-arg", "method=GET", "--tool-arg", f"url={url}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out["structuredContent"]["body"]["headers"]["Authorization"] == "[REDACTED:echo]"
    assert SECRET not in done.stdout
    assert f"Bearer {SECRET}" in [v for r in upstream.received for k, v in r.headers if k == "Authorization"]


def test_inspector_sees_a_tool_error_for_an_unknown_service(server_env: list[str]) -> None:
    done, out = inspector(server_env, "tools/call", "--tool-name", "get_credentials", "--tool-arg", "service_name=nope")
    assert out["isError"] is True and "known services: echo" in out["content"][0]["text"]
