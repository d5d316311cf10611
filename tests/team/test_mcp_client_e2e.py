"""clavis-mcp as Claude Desktop starts it, configured the original way (CLAVIS_API_URL + CLAVIS_API_KEY),
against the real team server (OpenBao, PostgreSQL, uvicorn) behind a TLS front on loopback.

The MCP server's environment holds only what the config gives it, plus CLAVIS_UPSTREAM_CA for
the test CA and an empty HOME: no local vault exists or is created. The credential reaches the
loopback HTTPS upstream; the tool results show it redacted; every failure is a tool error that
says what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import ElicitResult

from clavis_mcp.mcp_front.team_client import READ_TIMEOUT, TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import TOKEN_TTL, Tokens
from clavis_mcp.team.storage import service_to_json
from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import OTHER_SECRET, SECRET, make_service
from tests.team.conftest import ADMIN_EMAIL, TeamServer, add_echo, audit_rows, new_key, start_server, stop_server
from tests.team.shapes_upstream import shapes_upstream
from tests.team.tls_front import TlsFront, tls_front

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
BIN = str(Path(sys.executable).parent)
TOOLS = ["list_services", "get_credentials", "check_credential_status", "call_service"]


def desktop_config(url: str, key: str) -> dict[str, Any]:
    """The original product's Claude Desktop entry, as users paste it."""
    return {"mcpServers": {"clavis": {"command": "clavis-mcp", "args": [],
                                      "env": {"CLAVIS_API_KEY": key, "CLAVIS_API_URL": url}}}}  # fmt: skip


def params_from(config_file: Path, tmp_path: Path, ca: Path | None) -> StdioServerParameters:
    """Start the entry of a Claude Desktop config file the way the app does: its command, its env."""
    entry = json.loads(config_file.read_text())["mcpServers"]["clavis"]
    home = tmp_path / "desktop-home"
    home.mkdir(exist_ok=True)
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**entry["env"], "HOME": str(home), "CLAVIS_HOME": str(home / "clavis"), "PATH": path}
    if ca is not None:
        env["CLAVIS_UPSTREAM_CA"] = str(ca)
    command = shutil.which(entry["command"], path=path)
    assert command is not None
    return StdioServerParameters(command=command, args=entry["args"], env=env)


@asynccontextmanager
async def desktop_session(
    tmp_path: Path, url: str, key: str, ca: Path | None
) -> AsyncIterator[tuple[Client, StdioServerParameters]]:
    config_file = tmp_path / "claude_desktop_config.json"
    config_file.write_text(json.dumps(desktop_config(url, key)))
    params = params_from(config_file, tmp_path, ca)
    with (tmp_path / "mcp-stderr.log").open("a") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            yield client, params


def text_of(result: Any) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


def assert_no_secret(*values: Any) -> None:
    for value in values:
        text = value if isinstance(value, str) else json.dumps(value.model_dump(mode="json"), default=str)
        assert SECRET not in text and OTHER_SECRET not in text


@pytest.fixture
def ca_file(tmp_path: Path, upstream_ca: trustme.CA) -> Path:
    return write_ca(upstream_ca, tmp_path / "test-ca.pem")


@pytest.fixture
def front(server: TeamServer, upstream_ca: trustme.CA) -> Any:
    with tls_front(upstream_ca, int(server.url.rsplit(":", 1)[1])) as running:
        yield running


async def test_the_original_config_verbatim_runs_all_four_tools_on_the_team_server(
    server: TeamServer, team: Bootstrap, front: TlsFront, upstream: EchoUpstream, ca_file: Path, tmp_path: Path
) -> None:
    add_echo(server, upstream)
    key = new_key(server, "desktop", ["echo"])
    async with desktop_session(tmp_path, front.url, key, ca_file) as (client, params):
        names = [tool.name for tool in (await client.list_tools()).tools]
        listed = await client.call_tool("list_services", {})
        status = await client.call_tool("check_credential_status", {"service_name": "echo"})
        live = await client.call_tool("check_credential_status", {"service_name": "echo", "live": True})
        reveal = await client.call_tool("get_credentials", {"service_name": "echo"})
        called = await client.call_tool(
            "call_service",
            {"service_name": "echo", "method": "POST", "url": f"https://127.0.0.1:{upstream.port}/v1/echo",
             "json": {"prompt": "hi"}},
        )  # fmt: skip
    assert names == TOOLS
    assert not listed.is_error and [s["name"] for s in listed.structured_content["services"]] == ["echo"]
    assert not status.is_error and status.structured_content["state"] == "valid"
    assert not live.is_error and live.structured_content["last_check"]["state"] == "valid"
    assert "audit id" in text_of(live)
    assert reveal.is_error and "call_service" in text_of(reveal)
    assert not called.is_error, text_of(called)
    result = called.structured_content
    assert result["status"] == 200 and "REDACTED" in result["body"]["headers"]["Authorization"]
    assert result["redactions"] >= 1
    sent = [v for r in upstream.received for k, v in r.headers if k == "Authorization"]
    assert f"Bearer {SECRET}" in sent  # the upstream received the credential
    assert result["audit_id"] and any(result["audit_id"] in row for row in audit_rows(team))
    assert not Path(params.env["CLAVIS_HOME"]).exists()  # no local vault was opened or created
    assert_no_secret(listed, status, live, reveal, called, (tmp_path / "mcp-stderr.log").read_text())


async def test_scope_rate_limit_and_revocation_are_tool_errors_that_say_what_to_do(
    server: TeamServer, front: TlsFront, upstream: EchoUpstream, upstream_ca: trustme.CA, ca_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    add_echo(server, upstream)
    payroll = service_to_json(make_service("payroll", "payroll.example.test"))
    with server.admin() as admin:
        assert admin.post("/v1/admin/services", json={"definition": payroll, "secret": OTHER_SECRET}).status_code == 201
    with shapes_upstream(upstream_ca) as shapes:
        add_echo(server, shapes, name="shapes")
        key = new_key(server, "scoped", ["echo", "shapes"])
        async with desktop_session(tmp_path, front.url, key, ca_file) as (client, _):
            outside = await client.call_tool(
                "call_service",
                {"service_name": "payroll", "method": "GET", "url": "https://payroll.example.test/"},
            )
            limited = await client.call_tool(
                "call_service",
                {"service_name": "shapes", "method": "GET", "url": f"https://127.0.0.1:{shapes.port}/ratelimited"},
            )
            with server.admin() as admin:
                assert admin.delete("/v1/admin/keys/scoped").status_code == 204
            revoked = await client.call_tool("list_services", {})
    assert outside.is_error and "may not use" in text_of(outside) and "admin" in text_of(outside)
    assert limited.is_error and "429" in text_of(limited) and "retry in" in text_of(limited)
    assert revoked.is_error and "'scoped' was revoked" in text_of(revoked) and "team key create" in text_of(revoked)
    assert_no_secret(outside, limited, revoked)


async def test_a_pasted_login_token_that_expires_mid_session_names_clavis_mcp_login(
    server: TeamServer, front: TlsFront, team: Bootstrap, openbao: OpenBao, ca_file: Path, tmp_path: Path
) -> None:
    prefix = team.env["CLAVIS_TEAM_BAO_PREFIX"]
    bao = Bao(openbao.addr, openbao.root_token)
    try:
        tokens = Tokens(bao, f"{prefix}-transit", issuer=f"clavis-team:{prefix}")
        expires = time.time() + 4
        jwt = tokens.issue(ADMIN_EMAIL, "admin", now=expires - TOKEN_TTL)  # a login made 23 h 59 min 56 s ago
    finally:
        bao.close()
    async with desktop_session(tmp_path, front.url, jwt, ca_file) as (client, _):
        before = await client.call_tool("list_services", {})
        while time.time() <= expires + 1:
            await anyio.sleep(0.2)
        after = [await client.call_tool(name, args) for name, args in (
            ("list_services", {}), ("check_credential_status", {"service_name": "echo"}))]  # fmt: skip
    assert not before.is_error, text_of(before)
    for result in after:
        assert result.is_error and "expired" in text_of(result) and "clavis-mcp login" in text_of(result)


async def test_an_api_key_that_expires_mid_session_says_so_and_what_to_do(
    server: TeamServer, front: TlsFront, ca_file: Path, tmp_path: Path
) -> None:
    key = new_key(server, "short", ["echo"], expires_in_seconds=3)
    expires = time.time() + 3
    async with desktop_session(tmp_path, front.url, key, ca_file) as (client, _):
        before = await client.call_tool("list_services", {})
        while time.time() <= expires + 1:
            await anyio.sleep(0.2)
        after = await client.call_tool("list_services", {})
    assert not before.is_error, text_of(before)
    assert after.is_error and "'short' expired" in text_of(after) and "team key create" in text_of(after)


async def test_the_server_going_down_and_back_is_a_clear_error_then_works_again(
    server: TeamServer, front: TlsFront, team: Bootstrap, upstream_ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    key = new_key(server, "desk", ["echo"])
    async with desktop_session(tmp_path, front.url, key, ca_file) as (client, _):
        assert not (await client.call_tool("list_services", {})).is_error
        stop_server(server.process)
        down = await client.call_tool("list_services", {})
        again = start_server(tmp_path, team, upstream_ca)
        try:
            front.backend = int(again.url.rsplit(":", 1)[1])
            back = await client.call_tool("list_services", {})
        finally:
            stop_server(again.process)
    assert down.is_error and "cannot reach the team server" in text_of(down), text_of(down)
    assert not back.is_error, text_of(back)


async def test_initialize_and_tools_list_answer_while_the_server_is_down(tmp_path: Path, ca_file: Path) -> None:
    async with desktop_session(tmp_path, "http://127.0.0.1:9", "clv_not-a-real-key", ca_file) as (client, params):
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("list_services", {})
    assert names == TOOLS
    assert result.is_error and "cannot reach the team server at http://127.0.0.1:9" in text_of(result)
    assert not Path(params.env["CLAVIS_HOME"]).exists()


async def test_an_untrusted_server_certificate_is_a_tls_error_naming_clavis_upstream_ca(
    tmp_path: Path, upstream_ca: trustme.CA
) -> None:
    with tls_front(upstream_ca, 9) as untrusted:
        async with desktop_session(tmp_path, untrusted.url, "clv_not-a-real-key", None) as (client, _):
            result = await client.call_tool("list_services", {})
    assert result.is_error and "TLS" in text_of(result) and "CLAVIS_UPSTREAM_CA" in text_of(result)


@pytest.mark.reveals_secret
async def test_get_credentials_under_a_full_reveal_policy_returns_the_value_with_the_servers_audit_id(
    server: TeamServer, team: Bootstrap, front: TlsFront, upstream: EchoUpstream, ca_file: Path, tmp_path: Path
) -> None:
    add_echo(server, upstream, reveal="full")
    key = new_key(server, "revealer", ["echo"])
    async with desktop_session(tmp_path, front.url, key, ca_file) as (client, _):
        result = await client.call_tool("get_credentials", {"service_name": "echo"})
    assert not result.is_error, text_of(result)
    assert result.structured_content["value"] == SECRET and result.structured_content["reveal_policy"] == "full"
    audit_id = text_of(result).rsplit("audit id ", 1)[1]
    assert any(audit_id in row and "revealed" in row for row in audit_rows(team))
    assert SECRET not in (tmp_path / "mcp-stderr.log").read_text()


async def test_a_plain_http_team_url_off_loopback_is_refused_by_every_tool(tmp_path: Path) -> None:
    async with desktop_session(tmp_path, "http://clavis.example.com", "clv_not-a-real-key", None) as (client, _):
        names = [tool.name for tool in (await client.list_tools()).tools]
        results = [await client.call_tool("list_services", {}),
                   await client.call_tool("get_credentials", {"service_name": "echo"})]  # fmt: skip
    assert names == TOOLS
    for result in results:
        assert result.is_error and "plain http://" in text_of(result) and "vault" not in text_of(result)


def answering(action: str) -> tuple[Any, list[str]]:
    asked: list[str] = []

    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"approve": True} if action == "accept" else None)

    return callback, asked


@pytest.mark.reveals_secret
@pytest.mark.parametrize("action", ["decline", "accept"])
async def test_a_full_reveal_on_the_team_server_asks_the_local_user_first(
    server: TeamServer, team: Bootstrap, upstream: EchoUpstream, action: str
) -> None:
    add_echo(server, upstream, reveal="full")
    key = new_key(server, "asker", ["echo"])
    callback, asked = answering(action)
    team_client = TeamClient(server.url, {"CLAVIS_API_KEY": key})
    async with Client(build_team_server(team_client), elicitation_callback=callback) as client:
        result = await client.call_tool("get_credentials", {"service_name": "echo"})
    assert len(asked) == 1 and "'echo'" in asked[0] and SECRET not in asked[0]
    revealed = [row for row in audit_rows(team) if "revealed" in row]
    if action == "decline":
        assert result.is_error and "declined" in text_of(result) and revealed == []
    else:
        assert not result.is_error and result.structured_content["value"] == SECRET and len(revealed) == 1


async def test_a_server_that_accepts_but_never_answers_is_a_timeout_error_not_a_hang(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts connections; nothing ever answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with desktop_session(tmp_path, url, "clv_not-a-real-key", None) as (client, _):
            with anyio.fail_after(READ_TIMEOUT + 15):
                result = await client.call_tool("list_services", {})
    finally:
        silent.close()
    assert result.is_error and f"did not answer within {READ_TIMEOUT:.0f} s" in text_of(result)
