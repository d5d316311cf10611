"""A revocation by the CLI, in another process, reaches a running `clavis-mcp proxy` (MITM mode) on
the very next request inside an open tunnel: the proxy's vault answers "nothing changed" from
SQLite's WAL-index header between changes, and must never miss one."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs.ca import LocalCA
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.proxy.proxy_process import start_proxy, vault_home

pytestmark = pytest.mark.e2e
ROTATED = "sk-rotated-0123456789abcdefghijklmnop"


def test_an_agent_revoked_by_the_cli_is_refused_on_its_next_request_through_the_tunnel(
    tmp_path: Path, upstream_ca: trustme.CA
) -> None:
    home = tmp_path / "home"
    with EchoUpstream.start(upstream_ca) as upstream:
        env, cli = vault_home(tmp_path, upstream_ca, upstream.port)
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
