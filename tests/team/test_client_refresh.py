"""Login refresh: the team client trades a stored login close to its expiry for a new one
(``POST /v1/auth/refresh``) at the next tool call, against the real team server (OpenBao,
PostgreSQL, uvicorn); expired tokens, API keys and removed users are refused, and a login never
outlives 30 days from its password login."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from mcp import Client

from clavis_mcp.mcp_front.team_client import REFRESH_BEFORE, TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from clavis_mcp.mcp_front.team_session import load_session, save_session
from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import TOKEN_TTL
from clavis_mcp.team.refresh import SESSION_MAX, issue
from clavis_mcp.vault import Secret
from tests.team.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, audit_rows, new_key
from tests.team.test_mcp_client_e2e import text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def client_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "client-home"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.delenv("CLAVIS_API_KEY", raising=False)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")  # no keychain: the 0600 file
    return home


@pytest.fixture
def mint(team: Bootstrap, openbao: OpenBao) -> Iterator[Any]:
    """Sign login tokens as the server does, with any iat and session start."""
    prefix = team.env["CLAVIS_TEAM_BAO_PREFIX"]
    bao = Bao(openbao.addr, openbao.root_token)

    def make(email: str, iat: float, sess_start: float) -> str:
        return issue(bao, f"{prefix}-transit", f"clavis-team:{prefix}", email, "admin", int(sess_start), iat)[0]

    yield make
    bao.close()


def claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def refresh(server: TeamServer, bearer: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"}
    return httpx.post(f"{server.url}/v1/auth/refresh", headers=headers, timeout=30, trust_env=False)


async def test_a_login_near_expiry_is_refreshed_once_by_the_next_tool_calls_and_the_tools_work(
    server: TeamServer, team: Bootstrap, mint: Any, client_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = time.time()
    old = mint(ADMIN_EMAIL, now - TOKEN_TTL + 600, now - TOKEN_TTL + 600)  # ten minutes left
    save_session(server.url, ADMIN_EMAIL, Secret(old), claims(old)["exp"])
    team_client = TeamClient(server.url, {})
    async with Client(build_team_server(team_client)) as client:
        results: list[Any] = []

        async def call() -> None:
            results.append(await client.call_tool("list_services", {}))

        async with anyio.create_task_group() as group:  # two calls at once: one refresh
            group.start_soon(call)
            group.start_soon(call)
    stored = load_session(server.url)
    assert stored is not None
    new = stored.token.reveal()
    assert all(not r.is_error for r in results), [text_of(r) for r in results]
    assert new != old and stored.expires_at > time.time() + TOKEN_TTL - REFRESH_BEFORE
    assert claims(new)["sess_start"] == claims(old)["sess_start"]
    refreshed = [row for row in audit_rows(team) if "login-refresh" in row]
    assert len(refreshed) == 1 and ADMIN_EMAIL in refreshed[0]
    for text in (server.log_text(), caplog.text, *audit_rows(team), *(text_of(r) for r in results)):
        assert old not in text and new not in text  # no token in a log, the audit or a result


async def test_expired_tokens_api_keys_and_removed_users_cannot_refresh(
    server: TeamServer, team_dsn: str, mint: Any, client_home: Path
) -> None:
    now = time.time()
    expired = mint(ADMIN_EMAIL, now - TOKEN_TTL - 60, now - TOKEN_TTL - 60)
    key = new_key(server, "agent", ["echo"])
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": "gone@example.test", "password": "x" * 16})
        assert made.status_code == 201, made.text
    gone = mint("gone@example.test", now, now)
    with psycopg.connect(team_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM users WHERE email = 'gone@example.test'")
    answers = [refresh(server, bearer) for bearer in (expired, key, gone, "not-a-token")]
    assert [a.status_code for a in answers] == [401, 400, 401, 401], [a.text for a in answers]
    assert "expired" in answers[0].json()["detail"] and "clavis-mcp login" in answers[0].json()["detail"]
    assert "API key cannot be refreshed" in answers[1].json()["detail"]
    assert "no longer exists" in answers[2].json()["detail"]
    assert all("access_token" not in a.json() for a in answers)
    # The client, holding the expired login, says so and names the command; it does not refresh it.
    save_session(server.url, ADMIN_EMAIL, Secret(expired), claims(expired)["exp"])
    async with Client(build_team_server(TeamClient(server.url, {}))) as client:
        result = await client.call_tool("list_services", {})
    assert result.is_error and "expired" in text_of(result) and "clavis-mcp login" in text_of(result)
    stored = load_session(server.url)
    assert stored is not None and stored.token.reveal() == expired


async def test_refreshing_never_carries_a_login_past_30_days_from_the_password_login(
    server: TeamServer, team: Bootstrap, mint: Any, client_home: Path
) -> None:
    now = time.time()
    started = now - SESSION_MAX + 900  # the password login was 30 days less 15 minutes ago
    token = mint(ADMIN_EMAIL, now - 60, started)
    assert claims(token)["exp"] == int(started) + SESSION_MAX  # capped when issued
    chain = [token]
    for _ in range(2):  # refresh, then refresh the refreshed token
        answer = refresh(server, chain[-1])
        assert answer.status_code == 200, answer.text
        chain.append(answer.json()["access_token"])
        assert answer.json()["expires_in"] <= 900
    for t in chain[1:]:
        assert claims(t)["sess_start"] == int(started) and claims(t)["exp"] == int(started) + SESSION_MAX
    # The client refreshes a login at its cap once, then uses it until it expires.
    save_session(server.url, ADMIN_EMAIL, Secret(token), claims(token)["exp"])
    async with Client(build_team_server(TeamClient(server.url, {}))) as client:
        results = [await client.call_tool("list_services", {}) for _ in range(3)]
    assert all(not r.is_error for r in results), [text_of(r) for r in results]
    assert len([row for row in audit_rows(team) if "login-refresh" in row]) == 3  # two above, one by the client
    # A password login's token (no sess_start claim: its iat starts the session) gets the full 24 hours.
    login = httpx.post(f"{server.url}/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                       timeout=30, trust_env=False).json()["access_token"]  # fmt: skip
    assert "sess_start" not in claims(login)
    fresh = refresh(server, login).json()
    assert claims(fresh["access_token"])["sess_start"] == claims(login)["iat"]
    assert TOKEN_TTL - 60 <= fresh["expires_in"] <= TOKEN_TTL
