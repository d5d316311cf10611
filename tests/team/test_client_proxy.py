"""`clavis-mcp proxy` on a team client (CLAVIS_API_URL set): agents' HTTPS goes to the real team server's
streaming egress, which injects, redacts and audits; the local process holds no secret."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
import trustme

from clavis_mcp.team.bootstrap import Bootstrap
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.proxy.upstreams import reflecting_upstream
from tests.team.conftest import TeamServer, add_echo, audit_rows, new_key

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "clavis-mcp")


@contextmanager
def running_proxy(server: TeamServer, tmp_path: Path, services: list[str]) -> Iterator[dict[str, str]]:
    """`clavis-mcp proxy --port 0` as a team client with a key scoped to ``services``; its printed env."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "CLAVIS_HOME": str(tmp_path / "clavis"),
           "CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": new_key(server, "agent", services)}  # fmt: skip
    log = tmp_path / "proxy.log"
    with log.open("w") as err:
        proc = subprocess.Popen([EXE, "proxy", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        lines = dict(line.strip().split("=", 1) for line in (proc.stdout.readline() for _ in range(3)) if "=" in line)
        try:
            assert set(lines) == {"HTTPS_PROXY", "SSL_CERT_FILE"}, log.read_text()
            yield lines
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            proc.stdout.close()
    assert SECRET not in log.read_text()


@pytest.fixture
def team_proxy(server: TeamServer, upstream: EchoUpstream, tmp_path: Path) -> Iterator[dict[str, str]]:
    add_echo(server, upstream)
    with running_proxy(server, tmp_path, ["echo"]) as lines:
        yield lines


def test_an_httpx_agent_gets_the_credential_injected_by_the_server_and_redacted(
    team_proxy: dict[str, str], upstream: EchoUpstream, team: Bootstrap
) -> None:
    trust = ssl.create_default_context(cafile=team_proxy["SSL_CERT_FILE"])
    with httpx.Client(proxy=team_proxy["HTTPS_PROXY"], verify=trust, trust_env=False) as agent:
        answer = agent.post(f"https://127.0.0.1:{upstream.port}/v1/agent", json={"prompt": "hi"})
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text and "REDACTED" in answer.json()["headers"]["Authorization"]
    assert [v for r in upstream.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
    assert b'"prompt"' in upstream.received[0].body
    assert any(answer.headers["x-clavis-audit-id"] in row for row in audit_rows(team))


def test_a_curl_agent_works_and_a_wrong_proxy_token_is_refused(
    team_proxy: dict[str, str], upstream: EchoUpstream
) -> None:
    url = f"https://127.0.0.1:{upstream.port}/v1/curl"
    done = subprocess.run(["curl", "-sS", "--proxy", team_proxy["HTTPS_PROXY"], "--cacert",
                           team_proxy["SSL_CERT_FILE"], url], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout and "REDACTED" in done.stdout
    wrong = team_proxy["HTTPS_PROXY"].replace("clavis:", "clavis:x")
    refused = subprocess.run(["curl", "-sS", "--proxy", wrong, "--cacert", team_proxy["SSL_CERT_FILE"], url],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert refused.returncode != 0 and "407" in refused.stderr


def test_server_sent_events_flow_through_without_buffering_and_redacted(
    server: TeamServer, upstream_ca: trustme.CA, tmp_path: Path
) -> None:
    """The upstream holds the rest of its stream until the agent has read the first event."""
    gate, gate_seen = threading.Event(), []
    with reflecting_upstream(upstream_ca.issue_cert("127.0.0.1"), gate, gate_seen) as (port, _):
        add_echo(server, cast(EchoUpstream, SimpleNamespace(port=port)), name="sse")
        with running_proxy(server, tmp_path, ["sse"]) as proxy:
            trust = ssl.create_default_context(cafile=proxy["SSL_CERT_FILE"])
            with httpx.Client(proxy=proxy["HTTPS_PROXY"], verify=trust, trust_env=False, timeout=30) as agent:
                with agent.stream("GET", f"https://127.0.0.1:{port}/sse-gated") as answer:
                    lines = answer.iter_lines()
                    first = next(line for line in lines if line.startswith("data:"))
                    gate.set()
                    rest = list(lines)
    assert gate_seen == [True]  # the first event reached the agent while the upstream was still waiting
    assert "REDACTED" in first and SECRET not in first + "".join(rest)
    assert "data: [DONE]" in rest


def test_a_node_agent_works_through_the_team_client_proxy(team_proxy: dict[str, str], upstream: EchoUpstream) -> None:
    env = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("CLAVIS_")},
           "HTTPS_PROXY": team_proxy["HTTPS_PROXY"], "NODE_EXTRA_CA_CERTS": team_proxy["SSL_CERT_FILE"]}  # fmt: skip
    script = Path(__file__).resolve().parents[1] / "node" / "agents" / "fetch.mjs"
    done = subprocess.run(["node", str(script), f"https://127.0.0.1:{upstream.port}/v1/node"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    status, _, body = done.stdout.partition("\n")
    assert status == "200", done.stdout + done.stderr
    assert SECRET not in body and "REDACTED" in body
    assert [v for r in upstream.received for k, v in r.headers if k == "Authorization"] == [f"Bearer {SECRET}"]
