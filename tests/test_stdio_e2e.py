"""`clavis-mcp` as Claude Desktop runs it: a subprocess speaking MCP over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
EXE = str(Path(sys.executable).parent / "clavis-mcp")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, timeout=60, env=os.environ.copy())


@pytest.fixture
def registered(home: Path, upstream: EchoUpstream) -> EchoUpstream:
    assert cli("init").returncode == 0
    added = cli("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
    assert added.returncode == 0, added.stderr
    return upstream


async def test_stdio_session_injects_upstream_and_leaks_nothing(
    registered: EchoUpstream, home: Path, tmp_path: Path
) -> None:
    errlog = tmp_path / "stderr.log"
    params = StdioServerParameters(command=EXE, args=[], env=dict(os.environ))
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            listed = await client.call_tool("list_services", {})
            result = await client.call_tool(
                "call_service",
                {"service_name": "echo", "method": "POST", "url": f"https://127.0.0.1:{registered.port}/v1/echo",
                 "json": {"prompt": "hi"}},
            )  # fmt: skip
    assert not result.is_error, result.content
    assert result.structured_content["body"]["headers"]["Authorization"] == "[REDACTED:echo]"
    assert [v for r in registered.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
    assert json.loads(registered.received[0].body) == {"prompt": "hi"}
    for text in (json.dumps(listed.model_dump()), json.dumps(result.model_dump()),
                 (home / "audit.jsonl").read_text(), errlog.read_text()):  # fmt: skip
        assert SECRET not in text


def test_stdout_carries_only_json_rpc_and_bad_input_does_not_kill_the_server(registered: EchoUpstream) -> None:
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        "this is not json",
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "call_service", "arguments": {"service_name": "echo", "method": "GET",
                    "url": f"https://127.0.0.1:{registered.port}/v1/x"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
    ]  # fmt: skip
    proc = subprocess.Popen(
        [EXE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdin is not None and proc.stdout is not None
    for message in messages:
        proc.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
    proc.stdin.flush()
    replies: list[dict[str, object]] = []
    while not {1, 2, 3, 4} <= {r.get("id") for r in replies}:
        line = proc.stdout.readline()
        assert line, "the server closed stdout before answering"
        replies.append(json.loads(line))  # every stdout line is JSON
    proc.stdin.close()
    proc.wait(timeout=30)
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    assert all(r.get("jsonrpc") == "2.0" for r in replies)
    by_id = {r["id"]: r for r in replies if r.get("id") is not None}
    assert by_id[2].get("error") or by_id[2]["result"]["isError"]
    assert by_id[3]["result"]["structuredContent"]["status"] == 200
    assert len(by_id[4]["result"]["tools"]) == 4
    assert by_id[1]["result"]["serverInfo"]["version"]
    assert SECRET not in json.dumps(replies) + stderr


async def session_without_a_usable_vault(tmp_path: Path, env: dict[str, str]) -> tuple[list[Any], str]:
    """Call every tool of a server started over a vault it cannot open; return results and stderr."""
    errlog = tmp_path / "stderr.log"
    calls = [("list_services", {}), ("get_credentials", {"service_name": "x"}),
             ("check_credential_status", {"service_name": "x"}),
             ("call_service", {"service_name": "x", "method": "GET", "url": "https://x.test/"})]  # fmt: skip
    with errlog.open("w") as err:
        async with Client(stdio_client(StdioServerParameters(command=EXE, args=[], env=env), errlog=err)) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            results = [await client.call_tool(name, args) for name, args in calls]
    assert names == [name for name, _ in calls]
    return results, errlog.read_text()


async def test_missing_vault_starts_a_server_whose_tools_say_run_init(home: Path, tmp_path: Path) -> None:
    results, stderr = await session_without_a_usable_vault(tmp_path, dict(os.environ))
    for result in results:
        assert result.is_error and "clavis-mcp init" in result.content[0].text
    assert "clavis-mcp init" in stderr
    assert not home.exists()  # starting the server created nothing


async def test_locked_vault_answers_locked_state_and_the_fix(home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CLAVIS_PASSPHRASE": "correct horse battery staple"}
    created = subprocess.run([EXE, "init", "--key-store", "passphrase"], capture_output=True, text=True, env=env)
    assert created.returncode == 0, created.stderr
    env["CLAVIS_PASSPHRASE"] = "wrong passphrase"
    results, stderr = await session_without_a_usable_vault(tmp_path, env)
    status = results[2]
    assert not status.is_error and status.structured_content["state"] == "locked"
    assert "passphrase" in status.structured_content["detail"]
    assert all(r.is_error and "passphrase" in r.content[0].text for i, r in enumerate(results) if i != 2)
    assert "correct horse" not in stderr + json.dumps([r.model_dump() for r in results])
