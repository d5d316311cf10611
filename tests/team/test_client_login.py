"""`clavis-mcp login` and `install claude-desktop --team`: a config with no secret in it, against the
real team server; the MCP server started from that config uses the stored login."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.stdio import stdio_client

from clavis_mcp.clavis_cli.login_commands import ENDED_ON_SERVER
from clavis_mcp.clavis_cli.main import main
from clavis_mcp.mcp_front.team_session import load_session, save_session
from clavis_mcp.team import identity
from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import TOKEN_TTL, Tokens
from clavis_mcp.vault import Secret
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET
from tests.team.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, add_echo
from tests.team.test_mcp_client_e2e import params_from, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture
def desktop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The clavis-mcp home the MCP server started from the config will use (params_from's)."""
    home = tmp_path / "desktop-home" / "clavis"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.delenv("CLAVIS_API_KEY", raising=False)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")  # no keychain: the 0600 file
    return home


def login(url: str, password: str = ADMIN_PASSWORD) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["login", "--url", url, "--email", ADMIN_EMAIL, "--password-stdin"], input=password + "\n"
    )
    return result.exit_code, result.output


def expired_jwt(team: Bootstrap, openbao: OpenBao) -> str:
    prefix = team.env["CLAVIS_TEAM_BAO_PREFIX"]
    bao = Bao(openbao.addr, openbao.root_token)
    try:
        tokens = Tokens(bao, f"{prefix}-transit", issuer=f"clavis-team:{prefix}")
        return tokens.issue(ADMIN_EMAIL, "admin", now=time.time() - TOKEN_TTL - 60)
    finally:
        bao.close()


async def test_login_then_install_team_writes_no_secret_and_the_server_uses_the_login(
    server: TeamServer, upstream: EchoUpstream, desktop_home: Path, tmp_path: Path
) -> None:
    add_echo(server, upstream)
    code, output = login(server.url)
    assert code == 0 and "logged in" in output and ADMIN_PASSWORD not in output, output
    session = load_session(server.url)
    assert session is not None and session.expires_at > time.time()
    stored = (desktop_home / "team-sessions.json").stat().st_mode & 0o777
    assert stored == 0o600
    config = tmp_path / "claude_desktop_config.json"
    installed = CliRunner().invoke(
        main, ["install", "claude-desktop", "--team", server.url, "--config", str(config), "--command", EXE]
    )
    assert installed.exit_code == 0, installed.output
    text = config.read_text()
    entry = json.loads(text)["mcpServers"]["clavis"]
    assert entry["env"]["CLAVIS_API_URL"] == server.url and "CLAVIS_API_KEY" not in entry["env"]
    assert session.token.reveal() not in text and ADMIN_PASSWORD not in text
    async with Client(stdio_client(params_from(config, tmp_path, None))) as client:
        listed = await client.call_tool("list_services", {})
        called = await client.call_tool(
            "call_service",
            {"service_name": "echo", "method": "GET", "url": f"https://127.0.0.1:{upstream.port}/v1/x"},
        )
    assert not listed.is_error, text_of(listed)
    assert not called.is_error and called.structured_content["status"] == 200, text_of(called)
    assert SECRET not in json.dumps(called.structured_content)


def test_logout_ends_the_login_on_the_server_and_forgets_it_here(server: TeamServer, desktop_home: Path) -> None:
    code, output = login(server.url)
    assert code == 0, output
    session = load_session(server.url)
    assert session is not None
    token = session.token.reveal()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False) as client:
        assert client.get("/v1/services").status_code == 200
        logged_out = CliRunner().invoke(main, ["logout", "--url", server.url])
        assert logged_out.exit_code == 0 and "every login of yours on that server has ended" in logged_out.output
        assert client.get("/v1/services").status_code == 401  # ended on the server, not only forgotten here
    assert load_session(server.url) is None
    assert server.url not in (desktop_home / "team-sessions.json").read_text()
    again = CliRunner().invoke(main, ["logout", "--url", server.url])
    assert again.exit_code == 1 and "no login to" in again.output and "clavis-mcp login" in again.output


def test_logout_from_an_unreachable_server_forgets_the_login_and_fails_saying_others_may_live(
    desktop_home: Path,
) -> None:
    url = "http://127.0.0.1:9"  # discard: nothing answers
    save_session(url, ADMIN_EMAIL, Secret("a.b.c"), time.time() + 60)
    logged_out = CliRunner().invoke(main, ["logout", "--url", url])
    assert logged_out.exit_code == 1 and "could not be reached" in logged_out.output
    assert "team user sign-out" in logged_out.output
    assert load_session(url) is None


def test_logout_with_an_expired_login_never_says_the_others_ended(server: TeamServer, desktop_home: Path) -> None:
    """The review's case: a stolen copy kept fresh by refresh outlives the user's own expired copy;
    the server's 401 for an expired token is not "already ended"."""
    save_session(server.url, ADMIN_EMAIL, Secret("expired.login.token"), time.time() - 60)
    logged_out = CliRunner().invoke(main, ["logout", "--url", server.url])
    assert logged_out.exit_code == 1 and "had expired" in logged_out.output and "already ended" not in logged_out.output
    assert load_session(server.url) is None


def test_logout_after_an_admin_signed_the_user_out_says_it_had_ended(server: TeamServer, desktop_home: Path) -> None:
    assert login(server.url)[0] == 0
    with server.admin() as admin:
        assert admin.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"sign_out": True}).status_code == 200
    logged_out = CliRunner().invoke(main, ["logout", "--url", server.url])
    assert logged_out.exit_code == 0 and "already ended" in logged_out.output
    assert identity.ENDED.startswith(ENDED_ON_SERVER)  # what the client recognises is what the server says


def test_a_wrong_password_is_one_line_and_stores_nothing(server: TeamServer, desktop_home: Path) -> None:
    code, output = login(server.url, "not the password at all")
    assert code == 1 and "wrong e-mail address or password" in output
    assert load_session(server.url) is None


async def test_an_expired_login_makes_every_tool_name_clavis_mcp_login(
    server: TeamServer, desktop_home: Path, tmp_path: Path
) -> None:
    save_session(server.url, ADMIN_EMAIL, Secret("a.b.c"), time.time() - 60)
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"clavis": {"command": "clavis-mcp", "args": [],
                                                            "env": {"CLAVIS_API_URL": server.url}}}}))  # fmt: skip
    async with Client(stdio_client(params_from(config, tmp_path, None))) as client:
        results = [await client.call_tool("list_services", {}),
                   await client.call_tool("check_credential_status", {"service_name": "echo"})]  # fmt: skip
    for result in results:
        assert result.is_error and "expired" in text_of(result)
        assert f"clavis-mcp login --url {server.url}" in text_of(result)


async def test_a_pasted_token_that_expired_gives_way_to_a_fresh_login(
    server: TeamServer, team: Bootstrap, openbao: OpenBao, desktop_home: Path, tmp_path: Path
) -> None:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"clavis": {"command": "clavis-mcp", "args": [], "env": {
        "CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": expired_jwt(team, openbao)}}}}))  # fmt: skip
    async with Client(stdio_client(params_from(config, tmp_path, None))) as client:
        before = await client.call_tool("list_services", {})
        assert login(server.url)[0] == 0  # in a terminal, while the MCP server keeps running
        after = await client.call_tool("list_services", {})
    assert before.is_error and "expired" in text_of(before) and "clavis-mcp login" in text_of(before)
    assert not after.is_error, text_of(after)
