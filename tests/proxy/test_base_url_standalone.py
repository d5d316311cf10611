"""Base-URL mode on a real `clavis-mcp proxy` process: per-agent keys from the vault, revocation
taking effect at once, a real HTTPS upstream on loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
import trustme

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET
from tests.proxy.proxy_process import EXE, start_proxy

pytestmark = pytest.mark.e2e


def test_agent_key_from_the_vault_works_until_the_agent_is_revoked(tmp_path: Path, upstream_ca: trustme.CA) -> None:
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
        token = cli("agent", "add", "sdk").strip()
        proxy = start_proxy(env)
        announced = proxy.lines.get(timeout=20) or ""
        try:
            base = f"http://127.0.0.1:{proxy.port}/s/echo"
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as c:
                ok = c.get("/v1/models")
                cli("agent", "revoke", "sdk")
                revoked = c.get("/v1/models")
        finally:
            proxy.process.terminate()
            proxy.process.wait(timeout=20)
    assert f"base-URL mode on the same port: http://127.0.0.1:{proxy.port}/s/<service>/<path>" in announced
    assert ok.status_code == 200, ok.text
    assert ok.json()["headers"]["Authorization"] == "[REDACTED:echo]"
    assert revoked.status_code == 401
    seen = [v for r in upstream.received for k, v in r.headers if k.lower() == "authorization"]
    assert seen == [f"Bearer {SECRET}"]
    audit = (home / "audit.jsonl").read_text()
    assert token not in audit and '"source":"sdk"' in audit.replace(" ", "")
