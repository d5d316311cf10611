"""`clavis-mcp run -- COMMAND`: one command behind the proxy, with a real proxy and a loopback
HTTPS upstream; the service is `--local` on 127.0.0.1, which `env` used to exempt in NO_PROXY."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from clavis_mcp.clavis_cli.proxy_commands import port_taken
from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.proxy.proxy_process import EXE, start_proxy

pytestmark = pytest.mark.e2e
AGENT = "ci-agent"
NODE_AGENTS = Path(__file__).resolve().parents[1] / "node" / "agents"  # npm packages: scripts/ensure-node-deps
OWN_PROXY = re.compile(r"clavis-mcp run: proxy on 127\.0\.0\.1:(\d+) for this command")


@dataclass
class World:
    home: Path
    env: dict[str, str]
    upstream: EchoUpstream

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=90)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.upstream.port}{path}"

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in (self.home / "audit.jsonl").read_text().splitlines()]

    def assert_injected(self, output: str, path: str) -> None:
        [received] = [r for r in self.upstream.received if r.path == path]
        assert dict(received.headers)["Authorization"] == f"Bearer {SECRET}"
        assert "[REDACTED:echo]" in output and SECRET not in output


@pytest.fixture
def world(tmp_path: Path, upstream_ca: trustme.CA) -> Iterator[World]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "NODE_OPTIONS"}
    env |= {"CLAVIS_HOME": str(home), "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem"))}
    with EchoUpstream.start(upstream_ca) as upstream:
        w = World(home, env, upstream)
        assert w.cli("init", "--key-store", "keyfile").returncode == 0
        added = w.cli("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
        assert added.returncode == 0, added.stderr
        yield w


def test_without_a_proxy_it_starts_one_for_the_command_and_stops_it(world: World) -> None:
    result = world.cli("run", "--", "curl", "-sS", "--fail-with-body", world.url("/run-own"))
    assert result.returncode == 0, result.stderr
    world.assert_injected(result.stdout, "/run-own")
    port = int(OWN_PROXY.search(result.stderr).group(1))  # type: ignore[union-attr]
    assert not port_taken(port)  # stopped when the command exited
    assert world.records()[-1]["source"] == "default" and world.records()[-1]["decision"] == "injected"


def test_exit_status_of_the_command_is_passed_on(world: World) -> None:
    assert world.cli("run", "--", "sh", "-c", "exit 7").returncode == 7
    assert world.cli("run", "--", "sh", "-c", "kill -TERM $$").returncode == 128 + 15


def test_the_credential_of_its_own_proxy_is_made_for_the_run_not_the_agents(world: World) -> None:
    token = world.cli("agent", "add", AGENT).stdout.strip()
    result = world.cli("run", "--agent", AGENT, "--", "sh", "-c", 'printf %s "$HTTPS_PROXY"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"http://{AGENT}:") and token not in result.stdout


def test_an_unknown_agent_or_command_is_one_line_with_its_fix(world: World) -> None:
    unknown = world.cli("run", "--agent", "nobody", "--", "true")
    assert unknown.returncode == 1 and "clavis-mcp agent add nobody" in unknown.stderr
    missing = world.cli("run", "--", "no-such-program-here")
    assert missing.returncode == 1 and "command not found: no-such-program-here" in missing.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr


def test_with_a_proxy_running_it_goes_through_it_as_the_agent(world: World) -> None:
    world.cli("agent", "add", AGENT)
    proxy = start_proxy(world.env)
    try:
        result = world.cli("run", "--agent", AGENT, "--port", str(proxy.port), "--",
                           "curl", "-sS", "--fail-with-body", world.url("/run-shared"))  # fmt: skip
    finally:
        proxy.process.terminate()
        proxy.process.wait(timeout=20)
    assert result.returncode == 0, result.stderr
    assert f"through the proxy on 127.0.0.1:{proxy.port} as agent {AGENT!r}" in result.stderr
    world.assert_injected(result.stdout, "/run-shared")
    assert world.records()[-1]["source"] == AGENT


NODE_FETCH = "fetch(process.argv[1]).then(async r => console.log(r.status, await r.text()))"


def test_node_built_in_fetch_goes_through_the_proxy(world: World) -> None:
    """Node 20's fetch ignores HTTPS_PROXY: the preload `run` sets in NODE_OPTIONS routes it."""
    result = world.cli("run", "--", "node", "-e", NODE_FETCH, world.url("/node-run"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 ")
    world.assert_injected(result.stdout, "/node-run")


def parse_exports(text: str) -> dict[str, str]:
    import shlex

    pairs = (line.removeprefix("export ").partition("=") for line in text.splitlines())
    return {name: shlex.split(value)[0] if value != "''" else "" for name, _, value in pairs}


@pytest.mark.parametrize(
    ("client", "path"),
    [
        (["curl", "-sS", "--fail-with-body"], "/env-curl"),
        (["node", "-e", NODE_FETCH], "/env-node"),
        (["node", str(NODE_AGENTS / "axios.mjs")], "/env-axios"),
    ],
    ids=["curl", "node-built-in-fetch", "node-axios"],
)
def test_env_exports_alone_send_a_local_service_through_the_proxy(world: World, client: list[str], path: str) -> None:
    """Nothing cleared by hand: NO_PROXY must not exempt 127.0.0.1 when a service lives there."""
    world.cli("agent", "add", AGENT)
    proxy = start_proxy(world.env)
    try:
        exports = parse_exports(world.cli("env", "--agent", AGENT, "--port", str(proxy.port)).stdout)
        assert exports["NO_PROXY"] == ""  # axios reads `localhost` there as covering 127.0.0.1 too
        result = subprocess.run([*client, world.url(path)], env=world.env | exports, capture_output=True, text=True,
                                timeout=60)  # fmt: skip
    finally:
        proxy.process.terminate()
        proxy.process.wait(timeout=20)
    assert result.returncode == 0, result.stderr
    world.assert_injected(result.stdout, path)


def test_git_through_the_proxy_leaves_a_challenge_round_not_a_refusal(world: World) -> None:
    """git sends its first proxy request bare by design (anyauth), then again with the credential."""
    world.cli("run", "--", "git", "ls-remote", world.url("/repo.git"))  # the echo upstream is no git server
    requests = [r for r in world.records() if r.get("source") != "cli"]
    assert [r["decision"] for r in requests][:2] == ["challenge", "injected"], requests
    assert requests[0]["status"] == 407 and "refused" not in [r["decision"] for r in requests]
    assert world.upstream.received[0].path == "/repo.git/info/refs?service=git-upload-pack"


def test_another_program_on_the_port_never_gets_the_agents_token(world: World) -> None:
    """Only a listener that answers with clavis-mcp's challenge is handed the agent's credential."""
    import socket
    import threading

    world.cli("agent", "add", AGENT)
    heard: list[bytes] = []
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()

        def answer() -> None:
            while True:
                try:
                    conn, _ = other.accept()
                except OSError:
                    return
                with conn:
                    heard.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")

        threading.Thread(target=answer, daemon=True).start()
        result = world.cli("run", "--agent", AGENT, "--port", str(other.getsockname()[1]), "--",
                           "curl", "-sS", "--fail-with-body", world.url("/run-beside-other"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "is not a clavis-mcp proxy of this user; starting one" in result.stderr
    world.assert_injected(result.stdout, "/run-beside-other")
    assert heard and not any(b"proxy-authorization" in h.lower() for h in heard)


def squat_as_another_user(uid: int = 65534) -> tuple[int, int, int]:
    """A forked child that becomes ``uid``, listens on a free loopback port and answers every
    connection exactly as clavis-mcp's challenge does, writing what it heard to a pipe.
    Returns (pid, port, read end of the pipe)."""
    import socket

    ports_r, ports_w = os.pipe()
    heard_r, heard_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no threads of its own
        try:
            os.setgid(uid)
            os.setuid(uid)
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen()
            os.write(ports_w, str(server.getsockname()[1]).encode() + b"\n")
            while True:
                conn, _ = server.accept()
                conn.settimeout(5)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                except OSError:
                    pass
                os.write(heard_w, head)
                conn.sendall(b'HTTP/1.1 407 Proxy Authentication Required\r\n'
                             b'Proxy-Authenticate: Basic realm="clavis-mcp"\r\nContent-Length: 0\r\n'
                             b"Connection: close\r\n\r\n")  # fmt: skip
                conn.close()
        finally:
            os._exit(0)
    os.close(ports_w)
    os.close(heard_w)
    port = int(os.read(ports_r, 64))
    os.close(ports_r)
    return pid, port, heard_r


@pytest.mark.skipif(os.getuid() != 0, reason="a listener of another user needs root to start")
def test_another_user_replaying_the_challenge_on_the_port_never_gets_the_agents_token(world: World) -> None:
    """A listener of another local user that answers exactly as clavis-mcp does is not trusted:
    the agent's token would outlive the run (it is the one `env` prints)."""
    import signal

    world.cli("agent", "add", AGENT)
    pid, port, heard_pipe = squat_as_another_user()
    try:
        result = world.cli("run", "--agent", AGENT, "--port", str(port), "--",
                           "curl", "-sS", "--fail-with-body", world.url("/run-beside-squatter"))  # fmt: skip
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with os.fdopen(heard_pipe, "rb") as pipe:
        heard = pipe.read()
    assert heard.startswith(b"GET / HTTP/1.1")  # the probe reached it...
    credential_heard = b"proxy-authorization" in heard.lower()
    assert not credential_heard, "the other user's listener was handed a proxy credential"  # ...and nothing more
    assert result.returncode == 0, result.stderr
    assert "is not a clavis-mcp proxy of this user; starting one" in result.stderr
    world.assert_injected(result.stdout, "/run-beside-squatter")


def test_the_owners_of_a_listening_port_are_read_from_the_socket_tables(tmp_path: Path) -> None:
    from clavis_mcp.clavis_cli.run_commands import listening_owners

    rows = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 0100007F:22C3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1 1",
        "   1: 0100007F:22C3 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0 0 2 1",
        "   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 3 1",
    ]
    tcp = tmp_path / "tcp"
    tcp.write_text("\n".join(rows) + "\n")
    assert listening_owners(0x22C3, (tcp,)) == {1000}  # the established row of uid 0 is not a listener
    assert listening_owners(0x1F90, (tcp,)) == {0}
    assert listening_owners(1, (tcp,)) == set()
    assert listening_owners(0x22C3, (tmp_path / "missing",)) is None
