"""`clavis-mcp serve --http`: streamable HTTP on 127.0.0.1 behind a bearer token and an Origin check,
driven by a real MCP HTTP client against the real subprocess (SECURITY-CASES D28)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import trustme
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
EXE = str(Path(sys.executable).parent / "clavis-mcp")
HELLO = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": HELLO}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class HttpServer:
    url: str
    token: str
    process: subprocess.Popen[str]
    banner: str


def start_server(env: dict[str, str]) -> HttpServer:
    process = subprocess.Popen([EXE, "serve", "--http", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)  # fmt: skip
    assert process.stdout is not None
    banner = [process.stdout.readline() for _ in range(3)]
    url = banner[0].split("MCP endpoint: ", 1)[1].strip()
    token = banner[1].rsplit(": ", 1)[1].strip()
    return HttpServer(url, token, process, "".join(banner))


@pytest.fixture(scope="module")
def upstream(upstream_ca: trustme.CA) -> Iterator[EchoUpstream]:
    with EchoUpstream.start(upstream_ca) as server:
        yield server


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream_ca: trustme.CA, upstream: EchoUpstream) -> dict[str, str]:
    """One vault with service ``echo``, shared by this module's servers (spawning them is the slow part)."""
    work = tmp_path_factory.mktemp("serve-http")
    env = {**os.environ, "CLAVIS_HOME": str(work / "home"),
           "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, work / "upstream-ca.pem"))}  # fmt: skip
    add = ["add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin"]
    shown = ["add", "shown", "--host", "api.shown.test", "--reveal", "full", "--secret-stdin"]
    for args, stdin in ((["init", "--key-store", "keyfile"], None), (add, SECRET), (shown, SECRET)):
        done = subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module")
def served(env: dict[str, str]) -> Iterator[HttpServer]:
    server = start_server(env)
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.communicate(timeout=30)


def post(server: HttpServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=30, trust_env=False)


async def test_real_mcp_client_with_the_token_uses_every_tool_and_sees_no_secret(
    served: HttpServer, upstream: EchoUpstream
) -> None:
    assert served.url.startswith("http://127.0.0.1:") and served.url.endswith("/mcp")
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {served.token}"}, timeout=30)
    async with http, Client(streamable_http_client(served.url, http_client=http)) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        listed = await client.call_tool("list_services", {})
        called = await client.call_tool(
            "call_service", {"service_name": "echo", "method": "GET", "url": f"https://127.0.0.1:{upstream.port}/v1"}
        )
    assert names == ["list_services", "get_credentials", "check_credential_status", "call_service"]
    assert listed.structured_content["services"][0]["name"] == "echo"
    assert called.structured_content["body"]["headers"]["Authorization"] == "[REDACTED:echo]"
    assert SECRET not in json.dumps(called.model_dump())


@pytest.mark.parametrize(
    ("action", "revealed"),
    [
        pytest.param("accept", True, id="accepted", marks=pytest.mark.reveals_secret),
        pytest.param("decline", False, id="declined"),
    ],
)
async def test_full_reveal_over_http_asks_the_user_first(served: HttpServer, action: str, revealed: bool) -> None:
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"approve": True} if action == "accept" else None)

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {served.token}"}, timeout=30)
    async with (
        http,
        Client(streamable_http_client(served.url, http_client=http), elicitation_callback=answer) as client,
    ):
        result = await client.call_tool("get_credentials", {"service_name": "shown"})
    assert len(asked) == 1 and SECRET not in asked[0]
    assert (SECRET in json.dumps(result.model_dump())) is revealed and result.is_error is not revealed


REJECTED = [
    ("no-token", {}, 401),
    ("wrong-token", {"Authorization": "Bearer not-the-token"}, 401),
    ("wrong-scheme", {"Authorization": "Basic Zm9vOmJhcg=="}, 401),
]


@pytest.mark.parametrize(("headers", "status"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_requests_without_the_bearer_token_are_refused(
    served: HttpServer, headers: dict[str, str], status: int
) -> None:
    response = post(served, headers)
    assert response.status_code == status and response.headers["www-authenticate"].startswith("Bearer")


ORIGINS = [
    ("foreign-site", {"Origin": "https://evil.test"}, 403),
    ("lookalike-loopback", {"Origin": "http://127.0.0.1.evil.test"}, 403),
    ("rebinding-host", {"Host": "evil.test"}, 421),
    ("loopback-origin", {"Origin": "http://localhost:3000"}, 200),
    ("no-origin", {}, 200),
]


@pytest.mark.parametrize(("headers", "status"), [r[1:] for r in ORIGINS], ids=[r[0] for r in ORIGINS])
def test_non_local_origin_or_host_is_refused_even_with_the_token(
    served: HttpServer, headers: dict[str, str], status: int
) -> None:
    assert post(served, {"Authorization": f"Bearer {served.token}", **headers}).status_code == status


def test_the_token_is_printed_once_on_stdout_only(env: dict[str, str]) -> None:
    server = start_server(env)
    try:
        assert server.banner.count(server.token) == 1
        assert post(server, {"Authorization": f"Bearer {server.token}"}).status_code == 200
    finally:
        server.process.terminate()
        stdout, stderr = server.process.communicate(timeout=30)
    assert server.token not in stdout + stderr


def test_busy_port_is_a_clear_error(served: HttpServer, env: dict[str, str]) -> None:
    port = served.url.rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run([EXE, "serve", "--http", "--port", port], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
