"""list_services in pages, through real in-memory MCP client sessions: the local server over a
real vault, the team client over a loopback stand-in of the team API's ``GET /v1/services``.

Paging keeps one call's cost and size flat however many services exist (issue 18.4): each
service comes once, additions meanwhile neither repeat nor hide one, a name filter narrows the
pages, a cursor the tool did not give is a one-sentence tool error; both servers show the same
schema, and the page's last use and last check come from the audit index in one query.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.credentials import CHECK_ACTION
from clavis_mcp.mcp_front.paging import BAD_CURSOR
from clavis_mcp.mcp_front.team_client import TeamClient
from clavis_mcp.mcp_front.team_server import build_team_server
from clavis_mcp.vault import AuditLog, Secret, Vault, validate_secret
from clavis_mcp.vault.audit.log import INJECTED
from clavis_mcp.vault.auth import HeaderAuth
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from tests.conftest import SECRET, make_service

pytestmark = pytest.mark.anyio


def fill(vault: Vault, names: list[str]) -> None:
    vault.add_services([(make_service(name, f"{name}.example"), validate_secret(SECRET)) for name in names])


@asynccontextmanager
async def local(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Client]:
    async with Client(build_server(Gateway(vault, audit, LocalCA(home / "certs")))) as client:
        yield client


async def pages(client: Client, **arguments: Any) -> list[dict[str, Any]]:
    """Every page, following next_cursor from the first."""
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        result = await client.call_tool("list_services", {**arguments, **({"cursor": cursor} if cursor else {})})
        assert not result.is_error, result.content
        got.append(result.structured_content)
        cursor = result.structured_content["next_cursor"]
        if cursor is None:
            return got


def names_of(listed: list[dict[str, Any]]) -> list[str]:
    return [service["name"] for page in listed for service in page["services"]]


class TeamApi:
    """A loopback stand-in for the team server's ``GET /v1/services`` (the real one needs
    OpenBao and PostgreSQL: tests/team/test_mcp_client_e2e.py): it returns every row, unsorted."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        body = json.dumps({"services": rows}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  (the stdlib's name)
                self.send_response(200 if self.path == "/v1/services" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def team_api() -> Iterator[TeamApi]:
    rows = [{"name": f"t-{i:03d}", "connector": "generic", "auth": "bearer", "hosts": [f"t{i}.example"]}
            for i in reversed(range(250))]  # fmt: skip
    api = TeamApi(rows)
    yield api
    api.stop()


def team_server(api: TeamApi) -> MCPServer[Any]:
    return build_team_server(TeamClient(api.url, {"CLAVIS_API_KEY": "ck_stand_in_key"}))


async def test_paging_through_250_services_returns_each_exactly_once(vault: Vault, audit: AuditLog, home: Path) -> None:
    names = [f"svc-{i:03d}" for i in range(250)]
    fill(vault, names)
    async with local(vault, audit, home) as client:
        listed = await pages(client)
        by_60 = await pages(client, limit=60)
    assert [len(page["services"]) for page in listed] == [100, 100, 50]
    assert names_of(listed) == names and names_of(by_60) == names
    assert {page["total"] for page in listed + by_60} == {250}


async def test_services_added_between_pages_neither_repeat_nor_hide_another(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    names = [f"svc-{i:03d}" for i in range(0, 250, 2)]
    fill(vault, names)
    async with local(vault, audit, home) as client:
        first = (await client.call_tool("list_services", {"limit": 50})).structured_content
        fill(vault, ["svc-001", "svc-201", "aaa"])  # one before the cursor, one after, one before all
        vault.remove_service(first["services"][-1]["name"])  # the cursor's own service goes
        rest = await pages(client, limit=50, cursor=first["next_cursor"])
    seen = names_of([first, *rest])
    assert len(seen) == len(set(seen))
    assert set(names) <= set(seen) and "svc-201" in seen and "svc-001" not in seen


async def test_match_keeps_the_names_that_contain_it_in_any_case(vault: Vault, audit: AuditLog, home: Path) -> None:
    fill(vault, ["my-openai", "openai-batch", "github", "stripe-openai", *[f"x-{i}" for i in range(20)]])
    async with local(vault, audit, home) as client:
        listed = await pages(client, match="OpenAI", limit=2)
        none = (await client.call_tool("list_services", {"match": "nothing-like-it"})).structured_content
    assert names_of(listed) == ["my-openai", "openai-batch", "stripe-openai"]
    assert {page["total"] for page in listed} == {3}
    assert none == {"services": [], "total": 0, "next_cursor": None}


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor!", base64.urlsafe_b64encode(b"\xff\xfe").decode(), base64.b64encode(b"svc-001").decode(), "x"],
    ids=["not-base64", "not-utf-8", "padded", "truncated"],
)
async def test_a_cursor_the_tool_did_not_give_is_a_one_sentence_tool_error(
    vault: Vault, audit: AuditLog, home: Path, cursor: str
) -> None:
    fill(vault, ["svc-001", "svc-002"])
    async with local(vault, audit, home) as client:
        result = await client.call_tool("list_services", {"cursor": cursor})
    assert result.is_error
    assert result.content[0].text.endswith(BAD_CURSOR) and BAD_CURSOR.count(".") == 0


@pytest.mark.parametrize("limit", [0, 1001])
async def test_a_limit_outside_1_to_1000_is_refused(vault: Vault, audit: AuditLog, home: Path, limit: int) -> None:
    async with local(vault, audit, home) as client:
        result = await client.call_tool("list_services", {"limit": limit})
    assert result.is_error and "limit" in result.content[0].text


async def test_the_team_client_pages_what_the_team_api_returns_the_same_way(team_api: TeamApi) -> None:
    async with Client(team_server(team_api)) as client:
        listed = await pages(client)
        matched = await pages(client, match="t-24")
        bad = await client.call_tool("list_services", {"cursor": "not a cursor!"})
    assert [len(page["services"]) for page in listed] == [100, 100, 50]
    assert names_of(listed) == sorted(row["name"] for row in team_api.rows)
    assert names_of(matched) == [f"t-24{i}" for i in range(10)] and matched[0]["total"] == 10
    assert bad.is_error and bad.content[0].text.endswith(BAD_CURSOR)


async def test_the_local_and_team_servers_show_the_same_list_services_schema(
    vault: Vault, audit: AuditLog, home: Path, team_api: TeamApi
) -> None:
    async with local(vault, audit, home) as client:
        mine = {t.name: t.model_dump(mode="json", by_alias=True) for t in (await client.list_tools()).tools}
    async with Client(team_server(team_api)) as client:
        theirs = {t.name: t.model_dump(mode="json", by_alias=True) for t in (await client.list_tools()).tools}
    assert theirs == mine
    listed = mine["list_services"]
    assert set(listed["inputSchema"]["properties"]) == {"limit", "cursor", "match"}
    assert {"total", "next_cursor"} <= set(listed["outputSchema"]["properties"])
    assert "next_cursor" in listed["description"]


async def test_a_page_shows_each_services_own_last_use_and_last_check(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    fill(vault, [f"svc-{i:03d}" for i in range(150)])
    audit.append(source="proxy", service="svc-007", action="call", decision=INJECTED, status=200)
    audit.append(source="mcp", service="svc-120", action=CHECK_ACTION, decision="invalid", status=401,
                 reason="the provider refused it")  # fmt: skip
    audit.append(source="mcp", service="svc-120", action=CHECK_ACTION, decision="valid", status=200, reason="ok")
    audit.append(source="mcp", service="svc-121", action=CHECK_ACTION, decision="valid", status=200, reason="ok")
    audit.append(source="mcp", service="svc-121", action=CHECK_ACTION, decision="invalid", status=401,
                 reason="the provider refused it")  # fmt: skip
    async with local(vault, audit, home) as client:
        services = {s["name"]: s for s in names_and_services(await pages(client))}
        status = (await client.call_tool("check_credential_status", {"service_name": "svc-121"})).structured_content
    used = [name for name, s in services.items() if s["last_used_at"] is not None]
    assert used == ["svc-007"] and services["svc-007"]["last_used"].endswith("ago")
    assert services["svc-120"]["state"] == "valid" and services["svc-121"]["state"] == "invalid"
    assert status["last_check"]["state"] == "invalid" and status["last_check"]["status"] == 401
    assert {s["state"] for name, s in services.items() if name not in ("svc-120", "svc-121")} == {"unknown"}


def names_and_services(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [service for page in listed for service in page["services"]]


async def test_an_oauth_service_stored_by_an_older_version_lists_its_dead_grant(
    vault: Vault, audit: AuditLog, home: Path
) -> None:
    """OAuth state is read only for OAuth services: one stored before OAuth was an auth method (a
    bearer header beside its OAuth record) is upgraded before the listing reads it, so its state
    still shows."""
    fill(vault, ["plain"])
    config = OAuthConfig("https://auth.acme.example/token", "client-id", "refresh_token")
    grant = TokenGrant(Secret("at-listing-0123456789abcdef"), time.time() + 3600, Secret("rt-listing-0123456789"), None)
    oauth_store.register(vault, make_service("acme", "api.acme.example"), config, None, grant)
    record = oauth_store.load(vault, "acme")
    assert record is not None and oauth_store.mark_dead(vault, "acme", "invalid_grant", record.access_fp)
    vault.update_service(replace(vault.get_service("acme"), auth=HeaderAuth("Authorization", "Bearer {secret}")))
    reopened = Vault.open(home)  # another process: nothing upgraded yet
    try:
        async with local(reopened, audit, home) as client:
            listed = names_and_services(await pages(client))
    finally:
        reopened.close()
    assert [(s["name"], s["state"]) for s in listed] == [("acme", "reauth_required"), ("plain", "unknown")]
    assert listed[0]["expires_at"] is not None and listed[0]["auth_method"].startswith("oauth2")
