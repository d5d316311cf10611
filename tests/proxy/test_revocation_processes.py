"""A revocation by the CLI, in another process, reaches a running `clavis-mcp proxy` (MITM mode) on
the very next request inside an open tunnel: the proxy's vault answers "nothing changed" from
SQLite's WAL-index header between changes, and must never miss one."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs.ca import LocalCA
from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.proxy.proxy_process import EXE, start_proxy

pytestmark = pytest.mark.e2e
ROTATED = "sk-rotated-0123456789abcdefghijklmnop"


def test_an_agent_revoked_by_the_cli_is_refused_on_its_next_request_through_the_tunnel(
    tmp_path: Path, upstream_ca: trustme.CA
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env |= {"CLAVIS_HOME": str(home), "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp_path / "ca.pem"))}

    def cli(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([EXE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    with EchoUpstream.start(upstream_ca) as upstream:
        cli("init", "--key-store", "keyfile")
        cli("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
        token = cli("agent", "add", "ci").strip()
        other = cli("agent", "add", "ok").strip()
        proxy = start_proxy(env)
        try:
            trust = ssl.create_default_context(cafile=str(LocalCA(home / "certs").cert_path))
            url = f"https://127.0.0.1:{upstream.port}/v1/models"
            with (
                httpx.Client(proxy=f"http://ci:{token}@127.0.0.1:{proxy.port}", verify=trust, trust_env=False) as c,
                httpx.Client(proxy=f"http://ok:{other}@127.0.0.1:{proxy.port}", verify=trust, trust_env=False) as o,
            ):
                before = [c.get(url).status_code for _ in range(20)]  # the proxy settles between changes
                cli("rotate", "echo", "--secret-stdin", stdin=ROTATED)
                rotated = o.get(url)
                cli("agent", "revoke", "ci")
                revoked = c.get(url)
                still = o.get(url)
        finally:
            proxy.process.terminate()
            proxy.process.wait(timeout=20)
    assert before == [200] * 20
    assert revoked.status_code == 407 and "was revoked" in revoked.text
    assert rotated.status_code == still.status_code == 200
    seen = [v for r in upstream.received for k, v in r.headers if k.lower() == "authorization"]
    assert seen == [f"Bearer {SECRET}"] * 20 + [f"Bearer {ROTATED}"] * 2
