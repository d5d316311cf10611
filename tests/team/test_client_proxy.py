"""`clavis-mcp proxy` on a team client (CLAVIS_API_URL set): agents' HTTPS goes to the real team server's
streaming egress, which injects, redacts and audits; the local process holds no secret."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clavis_mcp.team.bootstrap import Bootstrap
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.team.conftest import TeamServer, add_echo, audit_rows, new_key

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture
def team_proxy(server: TeamServer, upstream: EchoUpstream, tmp_path: Path) -> Iterator[dict[str, str]]:
    add_echo(server, upstream)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "CLAVIS_HOME": str(tmp_path / "clavis"),
           "CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": new_key(server, "agent", ["echo"])}  # fmt: skip
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
