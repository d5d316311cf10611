"""Base-URL mode on a real `clavis-mcp proxy` process: per-agent keys from the vault, revocation
taking effect at once, a real HTTPS upstream on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trustme

from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.proxy.proxy_process import start_proxy, vault_home

pytestmark = pytest.mark.e2e


def test_agent_key_from_the_vault_works_until_the_agent_is_revoked(tmp_path: Path, upstream_ca: trustme.CA) -> None:
    home = tmp_path / "home"
    with EchoUpstream.start(upstream_ca) as upstream:
        env, cli = vault_home(tmp_path, upstream_ca, upstream.port)
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
