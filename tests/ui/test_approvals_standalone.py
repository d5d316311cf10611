"""`clavis-mcp proxy` for HTTPS_PROXY agents holds the writes of a service set to confirm writes;
`clavis-mcp approve` and `deny`, in another process, decide. curl is the agent."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.proxy.proxy_process import EXE, ProxyProcess, start_proxy
from tests.proxy.test_standalone_clients import parse_exports

pytestmark = pytest.mark.e2e
AGENT = "ci-agent"


class Setup:
    def __init__(self, env: dict[str, str], agent_env: dict[str, str], proxy: ProxyProcess, upstream: EchoUpstream):
        self.env, self.agent_env, self.proxy, self.upstream = env, agent_env, proxy, upstream

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], env=self.env, capture_output=True, text=True, timeout=60)

    def curl(self, method: str, path: str) -> subprocess.Popen[str]:
        url = f"https://127.0.0.1:{self.upstream.port}{path}"
        command = ["curl", "-sS", "-X", method, "-d", '{"n": 1}', "-w", "\n%{http_code}", url]
        return subprocess.Popen(command, env=self.agent_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def waiting(self) -> list[dict[str, object]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = self.cli("approvals", "--json")
            assert listed.returncode == 0, listed.stderr
            if listed.stdout.strip():
                return [json.loads(line) for line in listed.stdout.splitlines()]
            time.sleep(0.2)
        raise AssertionError("no request was held")


@pytest.fixture
def setup(tmp_path: Path, upstream_ca: trustme.CA) -> Iterator[Setup]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    ca = write_ca(upstream_ca, tmp_path / "ca.pem")
    env |= {"CLAVIS_HOME": str(tmp_path / "home"), "CLAVIS_UPSTREAM_CA": str(ca), "CLAVIS_APPROVAL_TIMEOUT": "30"}
    with EchoUpstream.start(upstream_ca) as upstream:
        run = lambda *a, stdin=None: subprocess.run(  # noqa: E731
            [EXE, *a], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=True
        )
        run("init", "--key-store", "keyfile")
        run("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
        run("agent", "add", AGENT)
        run("mcp-settings", "echo", "--confirm-writes")
        proxy = start_proxy(env)
        exports = parse_exports(run("env", "--agent", AGENT, "--port", str(proxy.port)).stdout)
        try:
            yield Setup(env, env | exports | {"NO_PROXY": "", "no_proxy": ""}, proxy, upstream)
        finally:
            proxy.process.terminate()
            proxy.process.wait(timeout=20)


def test_a_confirm_writes_service_holds_an_https_proxy_agents_post_until_the_cli_decides(setup: Setup) -> None:
    read = setup.curl("GET", "/read")
    assert read.communicate(timeout=60)[0].endswith("\n200")  # reads are not held
    approved = setup.curl("POST", "/approved")
    (held,) = setup.waiting()
    assert (held["agent"], held["service"], held["method"]) == (AGENT, "echo", "POST")
    assert held["preview"] == '{"n": 1}'
    assert [r.path for r in setup.upstream.received] == ["/read"]  # held: nothing sent yet
    decided = setup.cli("approve", str(held["id"]))
    assert decided.returncode == 0 and f"approved {held['id']}" in decided.stdout
    out, _ = approved.communicate(timeout=60)
    assert out.endswith("\n200") and "[REDACTED:echo]" in out and SECRET not in out

    denied = setup.curl("POST", "/denied")
    (held,) = setup.waiting()
    assert setup.cli("deny", str(held["id"])).returncode == 0
    out, _ = denied.communicate(timeout=60)
    assert out.endswith("\n403") and "cli denied this request" in out and "it was not sent" in out
    assert [r.path for r in setup.upstream.received] == ["/read", "/approved"]
    audit = setup.cli("audit", "--json", "--limit", "0").stdout
    decisions = [json.loads(line) for line in audit.splitlines() if '"action"' in line]
    assert [(r["action"], r["source"]) for r in decisions if r["action"] in ("approve", "deny")] == [
        ("approve", "cli"), ("deny", "cli")
    ]  # fmt: skip
