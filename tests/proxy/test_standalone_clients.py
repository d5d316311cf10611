"""Real agents through a real `clavis-mcp proxy` subprocess, set up only by `clavis-mcp env`.

curl, a Python httpx script, a Python requests script and Node 20 (undici's EnvHttpProxyAgent,
as docs/agents.md says) each get their credential injected and the echo scrubbed, and are
refused with a readable reason for a host no service owns.

The upstream listens on 127.0.0.1 (nothing else is reachable here) and the `env` exports set
``NO_PROXY`` for loopback, which would send these clients around the proxy. So the tests,
and only they, clear ``NO_PROXY``; everything else is exactly what `clavis-mcp env` printed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.proxy.proxy_process import EXE, ProxyProcess, start_proxy

pytestmark = pytest.mark.e2e
NODE_DIR = Path(__file__).resolve().parents[1] / "node" / "agents"
AGENT = "ci-agent"
UNOWNED_PORT = 4  # no service owns it, the proxy refuses before dialling, and fetch does not block it as it does 9


def parse_exports(text: str) -> dict[str, str]:
    exports = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = shlex.split(value)[0]
    return exports


@dataclass
class Standalone:
    home: Path
    base_env: dict[str, str]
    proxy: ProxyProcess
    agent_env: dict[str, str]
    upstream: EchoUpstream
    ca: trustme.CA

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], env=self.base_env, input=stdin, capture_output=True, text=True, timeout=60)

    def run_agent(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(command), env=self.agent_env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory, upstream_ca: trustme.CA) -> Iterator[Standalone]:
    tmp = tmp_path_factory.mktemp("standalone")
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env |= {"CLAVIS_HOME": str(home), "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp / "upstream-ca.pem"))}
    with EchoUpstream.start(upstream_ca) as upstream:
        run = lambda *a, stdin=None: subprocess.run(  # noqa: E731
            [EXE, *a], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=True
        )
        run("init", "--key-store", "keyfile")
        run("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
        run("agent", "add", AGENT)
        proxy = start_proxy(env)
        exports = parse_exports(run("env", "--agent", AGENT, "--port", str(proxy.port)).stdout)
        agent_env = env | exports | {"NO_PROXY": "", "no_proxy": ""}
        try:
            yield Standalone(home, env, proxy, agent_env, upstream, upstream_ca)
        finally:
            proxy.process.terminate()
            proxy.process.wait(timeout=20)


def echo_url(standalone: Standalone, path: str = "/v1/models") -> str:
    return f"https://127.0.0.1:{standalone.upstream.port}{path}"


def unknown_url() -> str:
    return f"https://127.0.0.1:{UNOWNED_PORT}/v1"


def assert_injected_and_scrubbed(standalone: Standalone, output: str, path: str) -> None:
    received = [r for r in standalone.upstream.received if r.path == path]
    assert len(received) == 1, f"upstream did not receive {path}: {output}"
    assert dict(received[0].headers)["Authorization"] == f"Bearer {SECRET}"
    assert "[REDACTED:echo]" in output and SECRET not in output


def test_startup_line_says_where_and_how_many_services(standalone: Standalone) -> None:
    assert f"listening on http://127.0.0.1:{standalone.proxy.port} for 1 service and 1 agent" in standalone.proxy.ready


def test_env_points_every_runtime_at_one_bundle_with_our_ca(standalone: Standalone) -> None:
    env = standalone.agent_env
    bundle = Path(env["SSL_CERT_FILE"])
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"):
        assert env[name] == str(bundle)
    ours = (standalone.home / "certs" / "mitmproxy-ca-cert.pem").read_text().strip()
    text = bundle.read_text()
    assert ours in text and text.count("BEGIN CERTIFICATE") > 10  # the system CAs are kept
    assert env["HTTPS_PROXY"].startswith(f"http://{AGENT}:") and env["HTTPS_PROXY"] == env["https_proxy"]


def test_curl_gets_its_credential_injected(standalone: Standalone) -> None:
    result = standalone.run_agent("curl", "-sS", "--fail-with-body", echo_url(standalone, "/curl"))
    assert result.returncode == 0, result.stderr
    assert_injected_and_scrubbed(standalone, result.stdout, "/curl")


def test_curl_is_refused_an_unknown_host_with_a_readable_reason(standalone: Standalone) -> None:
    result = standalone.run_agent("curl", "-sS", "-v", unknown_url())
    assert result.returncode != 0
    assert "no service is registered for https://127.0.0.1:" in result.stderr


HTTPX_SCRIPT = "import httpx, sys; r = httpx.get(sys.argv[1]); print(r.status_code); print(r.text)"
REQUESTS_SCRIPT = "import requests, sys; r = requests.get(sys.argv[1]); print(r.status_code); print(r.text)"


@pytest.mark.parametrize("script", [HTTPX_SCRIPT, REQUESTS_SCRIPT], ids=["httpx", "requests"])
def test_python_clients_get_their_credential_injected(standalone: Standalone, script: str) -> None:
    path = f"/python-{'httpx' if 'httpx' in script else 'requests'}"
    result = standalone.run_agent(sys.executable, "-c", script, echo_url(standalone, path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200")
    assert_injected_and_scrubbed(standalone, result.stdout, path)


@pytest.mark.parametrize("script", [HTTPX_SCRIPT, REQUESTS_SCRIPT], ids=["httpx", "requests"])
def test_python_clients_are_refused_an_unknown_host(standalone: Standalone, script: str) -> None:
    result = standalone.run_agent(sys.executable, "-c", script, unknown_url())
    assert result.returncode != 0
    assert "403" in result.stderr


def _node(standalone: Standalone, url: str) -> subprocess.CompletedProcess[str]:
    if not (NODE_DIR / "node_modules" / "undici").is_dir():
        pytest.fail("run scripts/ensure-node-deps (make test does) to install tests/node/agents")
    return standalone.run_agent("node", str(NODE_DIR / "fetch.mjs"), url)


def test_node_fetch_with_undici_env_proxy_agent_gets_its_credential_injected(standalone: Standalone) -> None:
    result = _node(standalone, echo_url(standalone, "/node"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200"), result.stdout
    assert_injected_and_scrubbed(standalone, result.stdout, "/node")


def test_node_is_refused_an_unknown_host(standalone: Standalone) -> None:
    result = _node(standalone, unknown_url())
    assert result.stdout.startswith("ERROR") and "403" in result.stdout, result.stdout


def test_plain_http_to_an_unknown_host_gets_the_reason_in_the_body(standalone: Standalone) -> None:
    result = standalone.run_agent("curl", "-sS", f"http://127.0.0.1:{UNOWNED_PORT}/v1")
    assert "clavis-mcp refused this request: no service is registered for http://127.0.0.1:" in result.stdout


def test_audit_names_the_agent(standalone: Standalone) -> None:
    records = [json.loads(line) for line in (standalone.home / "audit.jsonl").read_text().splitlines()]
    injected = [r for r in records if r.get("decision") == "injected"]
    assert injected and {r["source"] for r in injected} == {AGENT}
    assert SECRET not in (standalone.home / "audit.jsonl").read_text()


def test_a_service_added_while_running_is_served_and_a_revoked_agent_is_refused(standalone: Standalone) -> None:
    with EchoUpstream.start(standalone.ca) as second:
        added = standalone.cli(
            "add", "late", "--host", f"127.0.0.1:{second.port}", "--local", "--secret-stdin", stdin="late-0123456789abc"
        )
        assert added.returncode == 0, added.stderr
        ok = standalone.run_agent("curl", "-sS", f"https://127.0.0.1:{second.port}/late")
        assert [dict(r.headers)["Authorization"] for r in second.received] == ["Bearer late-0123456789abc"], ok
    assert standalone.cli("agent", "revoke", AGENT).returncode == 0
    refused = standalone.run_agent("curl", "-sS", "-v", echo_url(standalone, "/after-revoke"))
    assert "407" in refused.stderr
    assert not [r for r in standalone.upstream.received if r.path == "/after-revoke"]


def test_sigint_and_sigterm_stop_the_proxy_cleanly(standalone: Standalone) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        proxy = start_proxy(standalone.base_env)
        proxy.process.send_signal(signum)
        assert proxy.process.wait(timeout=20) == 0
        assert "stopping" in proxy.drain()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", proxy.port)) != 0  # nothing listens any more


def test_a_busy_port_is_one_clear_line_and_exit_1(standalone: Standalone) -> None:
    result = standalone.cli("proxy", "--port", str(standalone.proxy.port))
    assert result.returncode == 1
    assert f"could not listen on 127.0.0.1:{standalone.proxy.port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
