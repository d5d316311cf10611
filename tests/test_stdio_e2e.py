"""`clavis-mcp` as Claude Desktop runs it: a subprocess speaking MCP over stdio."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
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


# -- every line answered; stopped by a signal ------------------------------------------------------

CLIENT_INFO = {"name": "t", "version": "1"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT_INFO}}  # fmt: skip


class RawServer:
    """The real `clavis-mcp` over stdio, driven with raw bytes, read a line at a time with a bound."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([EXE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=os.environ.copy())  # fmt: skip

    def send(self, line: bytes | dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no reply in time"
        line = self.proc.stdout.readline()
        assert line, "the server closed stdout"
        return dict(json.loads(line))

    def initialized(self) -> RawServer:
        self.send(INITIALIZE)
        assert self.reply()["id"] == 1
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    def stop(self, sig: int, timeout: float = 30.0) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def raw(registered: EchoUpstream) -> Iterator[RawServer]:
    server = RawServer()
    try:
        yield server.initialized()
    finally:
        server.close()


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


BAD_LINES: list[tuple[str, bytes, int | None, int]] = [
    ("parse-error", b'{"jsonrpc": "2.0", "id": 11, "method": "tools/list", "params": ', 11, -32700),
    ("not-json-at-all", b"this is not json", None, -32700),
    ("not-an-object", b"[1, 2, 3]", None, -32600),
    ("no-method", b'{"jsonrpc": "2.0", "id": 12, "params": {}}', 12, -32600),
    ("wrong-version", b'{"jsonrpc": "1.0", "id": 13, "method": "tools/list"}', 13, -32600),
    ("deep-arguments", json.dumps({"jsonrpc": "2.0", "id": 14, "method": "tools/call",
                                   "params": {"name": "list_services", "arguments": nested(300)}}).encode(),
     14, -32602),
    ("deeper-than-python-parses", b'{"jsonrpc": "2.0", "id": 15, "method": "tools/call", "params": ' + b"[" * 5000,
     15, -32700),
]  # fmt: skip


@pytest.mark.parametrize(("line", "request_id", "code"), [r[1:] for r in BAD_LINES], ids=[r[0] for r in BAD_LINES])
def test_every_bad_line_gets_a_json_rpc_error_and_the_server_stays_up(
    raw: RawServer, line: bytes, request_id: int | None, code: int
) -> None:
    raw.send(line)
    answer = raw.reply()
    assert (answer["id"], answer["error"]["code"]) == (request_id, code), answer
    raw.send({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
    assert len(raw.reply()["result"]["tools"]) == 4


def test_a_lone_surrogate_in_an_argument_is_answered_with_a_tool_error(raw: RawServer) -> None:
    raw.send(b'{"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"name": "call_service", '
             b'"arguments": {"service_name": "\\ud800", "method": "GET", "url": "https://x.example/"}}}')  # fmt: skip
    answer = raw.reply()
    assert answer["id"] == 21 and answer["result"]["isError"] is True
    assert "service_name must be" in answer["result"]["content"][0]["text"]


def test_a_line_longer_than_one_read_of_the_pipe_is_read_whole(raw: RawServer) -> None:
    """The pipe is read 64 KiB at a time on the event loop: a long line is assembled across reads."""
    long_line = {"jsonrpc": "2.0", "id": 31, "method": "tools/call",
                 "params": {"name": "list_services", "arguments": {"cursor": "x" * 300_000}}}  # fmt: skip
    raw.send(long_line)
    assert raw.reply()["id"] == 31
    raw.send({"jsonrpc": "2.0", "id": 32, "method": "ping"})
    assert raw.reply()["id"] == 32


def test_sigint_exits_promptly_and_quietly(raw: RawServer) -> None:
    code, stderr = raw.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in stderr, stderr


def test_a_script_read_from_a_file_is_answered_into_a_file(registered: EchoUpstream, tmp_path: Path) -> None:
    """A replayed session (stdin and stdout are files, not pipes): every request answered before the exit."""
    script, answers = tmp_path / "session.jsonl", tmp_path / "answers.jsonl"
    lines = [INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]  # fmt: skip
    script.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with script.open("rb") as stdin, answers.open("wb") as stdout:
        done = subprocess.run([EXE], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in answers.read_text().splitlines()]
    assert [reply["id"] for reply in replies] == [1, 2]
    assert "call_service" in [tool["name"] for tool in replies[1]["result"]["tools"]]


def test_pipes_are_served_without_blocking_and_left_as_they_were_for_whoever_shares_them(
    registered: EchoUpstream,
) -> None:
    """The server reads and writes its pipes on the event loop (non-blocking), and puts their
    blocking mode back at the exit: that mode belongs to the pipe, which others may hold too."""
    child_in, to_child = os.pipe()
    from_child, child_out = os.pipe()
    proc = subprocess.Popen([EXE], stdin=child_in, stdout=child_out, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        os.write(to_child, json.dumps(INITIALIZE).encode() + b"\n")
        ready, _, _ = select.select([from_child], [], [], 60)
        assert ready and json.loads(os.read(from_child, 65536).splitlines()[0])["id"] == 1
        assert not os.get_blocking(child_in) and not os.get_blocking(child_out)  # shared with our copies
        os.close(to_child)  # end of input: the server exits
        assert proc.wait(timeout=60) == 0
        assert os.get_blocking(child_in) and os.get_blocking(child_out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for fd in (child_in, from_child, child_out):
            os.close(fd)


def test_sigterm_lets_the_call_in_flight_finish_and_records_it(
    home: Path, upstream_ca: trustme.CA, tmp_path: Path
) -> None:
    from tests.mcp_front.scripted_upstream import ScriptedUpstream

    assert cli("init").returncode == 0
    slow = ScriptedUpstream.start(upstream_ca)  # /slow answers after two seconds
    server = RawServer()
    try:
        added = cli("add", "api", "--host", f"127.0.0.1:{slow.port}", "--local", "--secret-stdin", stdin=SECRET)
        assert added.returncode == 0, added.stderr
        server.initialized()
        arguments = {"service_name": "api", "method": "POST", "url": slow.url("/slow")}
        server.send({"jsonrpc": "2.0", "id": 31, "method": "tools/call",
                     "params": {"name": "call_service", "arguments": arguments}})  # fmt: skip
        deadline = time.monotonic() + 30
        while not slow.received and time.monotonic() < deadline:  # the request has left with the credential
            time.sleep(0.05)
        assert slow.received
        server.proc.send_signal(signal.SIGTERM)
        answer = server.reply()
        code = server.proc.wait(timeout=30)
        assert server.proc.stderr is not None
        stderr = server.proc.stderr.read().decode(errors="replace")
    finally:
        server.close()
        slow.stop()
    assert answer["id"] == 31 and answer.get("result", {}).get("structuredContent", {}).get("status") == 200, answer
    assert code == 0 and "Traceback" not in stderr, stderr
    records = [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]
    assert any(r.get("path") == "/slow" and r["decision"] == "injected" for r in records)
    assert "OK" in cli("audit", "verify").stdout
