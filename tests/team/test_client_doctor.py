"""`clavis-mcp doctor` recognises the original team configuration in Claude Desktop's config and checks
the path to the real team server: reachable, TLS, the key and its state, scope, each service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from demo.echo_upstream import EchoUpstream
from tests.team.conftest import TeamServer, add_echo, new_key
from tests.team.test_mcp_client_e2e import desktop_config
from tests.team.tls_front import tls_front

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def no_team_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLAVIS_API_URL", "CLAVIS_API_KEY", "CLAVIS_UPSTREAM_CA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "clavis"))


def doctor(tmp_path: Path, url: str, key: str) -> dict[str, dict[str, Any]]:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps(desktop_config(url, key)))
    result = CliRunner().invoke(main, ["doctor", "--config", str(config), "--json"])
    return {check["name"]: check for check in json.loads(result.stdout)}


def test_doctor_checks_the_original_config_against_the_team_server(
    server: TeamServer, upstream: EchoUpstream, tmp_path: Path
) -> None:
    add_echo(server, upstream)
    key = new_key(server, "desk", ["echo"])
    checks = doctor(tmp_path, server.url, key)
    assert checks["team mode"]["ok"] and "original configuration" in checks["team mode"]["detail"]
    for name in ("team server", "team key", "team scope", "team service echo"):
        assert checks[name]["ok"], checks[name]
    assert "echo" in checks["team scope"]["detail"]
    assert "vault" not in checks  # no local vault is looked for
    with server.admin() as admin:
        assert admin.delete("/v1/admin/keys/desk").status_code == 204
    revoked = doctor(tmp_path, server.url, key)["team key"]
    assert not revoked["ok"] and "'desk' was revoked" in revoked["detail"]


def test_doctor_names_clavis_upstream_ca_for_an_untrusted_certificate(tmp_path: Path, upstream_ca: trustme.CA) -> None:
    with tls_front(upstream_ca, 9) as front:
        checks = doctor(tmp_path, front.url, "clv_not-a-real-key")
    assert not checks["team server"]["ok"] and "CLAVIS_UPSTREAM_CA" in checks["team server"]["detail"]
    assert "team key" not in checks
