"""Approvals on the MCP path: ``call_service`` through a real MCP client session and the gateway's
real embedded proxy. A client that cannot ask (no elicitation) gets the request held in the shared
queue, as a proxy agent does; `clavis-mcp approve`/`deny` (the CLI, in another thread) decides. A
client whose user accepted the elicitation is not asked a second time by the hold."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from click.testing import CliRunner, Result
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import ElicitResult

from clavis_mcp.certs import LocalCA
from clavis_mcp.clavis_cli.main import main
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.calls import CallLimits
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.approvals import ApprovalHold, Approvals
from clavis_mcp.vault.policy import set_approvals
from clavis_mcp.vault.proxy_config import ProxyConfig
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
Elicitation = Callable[[Any, Any], Awaitable[ElicitResult]]


@pytest.fixture(params=["legacy", "auto"], ids=["handshake", "2026-07-28"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def scripted(vault: Vault, upstream_ca: trustme.CA) -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream.start(upstream_ca)
    vault.add_service(make_service("api", f"127.0.0.1:{server.port}", local=True), validate_secret(SECRET))
    # the MCP server's own agent name is "mcp": only its writes wait, other agents' go out
    set_approvals(vault, "api", "none")
    set_approvals(vault, "api", "writes", agent="mcp")
    yield server
    server.stop()


def connect(vault: Vault, audit: AuditLog, home: Path, mode: str, *, timeout: float = 30.0,
            limits: CallLimits | None = None) -> Callable[..., Any]:  # fmt: skip
    hold = ApprovalHold(home, timeout=timeout, poll=0.05)
    gateway = Gateway(vault, audit, LocalCA(home / "certs"), config=ProxyConfig(approvals=hold), limits=limits)

    @asynccontextmanager
    async def session(elicitation: Elicitation | None = None) -> AsyncIterator[Client]:
        async with Client(build_server(gateway), mode=mode, elicitation_callback=elicitation) as client:
            yield client
        await gateway.aclose()

    return session


async def post(client: Client, scripted: ScriptedUpstream, path: str) -> Any:
    return await client.call_tool(
        "call_service", {"service_name": "api", "method": "POST", "url": scripted.url(path), "json": {"n": 1}}
    )


async def waiting(vault: Vault) -> str:
    queue = Approvals(vault.store)
    with anyio.fail_after(30):
        while not (found := queue.pending()):
            await asyncio.sleep(0.05)
    (held,) = found
    assert (held.agent, held.service, held.method, held.preview) == ("mcp", "api", "POST", '{"n":1}')
    return held.id


async def cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def decisions(audit: AuditLog) -> list[tuple[str, str]]:
    return [(str(r["action"]), str(r["source"])) for r in audit.records() if r.get("action") in ("approve", "deny")]


async def test_a_client_that_cannot_ask_is_held_until_the_cli_approves_then_it_goes_out(
    vault: Vault, audit: AuditLog, home: Path, mode: str, scripted: ScriptedUpstream
) -> None:
    async with connect(vault, audit, home, mode)() as client:
        call = asyncio.create_task(post(client, scripted, "/held"))
        held_id = await waiting(vault)
        assert scripted.received == []  # held: nothing sent yet
        approved = await cli("approve", held_id)
        assert approved.exit_code == 0 and f"approved {held_id}" in approved.output, approved.output
        result = await call
    assert not result.is_error, result.content
    assert [seen.path for seen in scripted.received] == ["/held"]
    assert decisions(audit) == [("approve", "cli")]
    (record,) = [r for r in audit.records() if r.get("source") == "mcp" and r.get("path") == "/held"]
    assert f"approved by cli (request {held_id})" in str(record.get("reason"))


async def test_an_approved_call_names_its_approver_in_the_summary_and_the_structured_result(
    vault: Vault, audit: AuditLog, home: Path, mode: str, scripted: ScriptedUpstream
) -> None:
    """The model can tell the user who let the write go (the audit record's approver), not only that it went."""
    async with connect(vault, audit, home, mode)() as client:
        call = asyncio.create_task(post(client, scripted, "/named"))
        held_id = await waiting(vault)
        assert (await cli("approve", held_id)).exit_code == 0
        result = await call
        read = await client.call_tool(
            "call_service", {"service_name": "api", "method": "GET", "url": scripted.url("/r")}
        )
    assert not result.is_error, result.content
    assert result.structured_content["approved_by"] == "cli"
    assert "approved by cli" in result.content[0].text
    assert read.structured_content["approved_by"] is None and "approved by" not in read.content[0].text


async def test_a_denied_call_is_a_tool_error_that_says_it_was_denied_and_not_sent(
    vault: Vault, audit: AuditLog, home: Path, mode: str, scripted: ScriptedUpstream
) -> None:
    async with connect(vault, audit, home, mode)() as client:
        call = asyncio.create_task(post(client, scripted, "/denied"))
        held_id = await waiting(vault)
        assert (await cli("deny", held_id)).exit_code == 0
        result = await call
    text = result.content[0].text
    assert result.is_error and f"cli denied this request (approval {held_id})" in text and "not sent" in text
    assert scripted.received == [] and decisions(audit) == [("deny", "cli")]


async def test_an_unanswered_call_is_refused_before_the_calls_own_timeout_and_says_where_to_approve(
    vault: Vault, audit: AuditLog, home: Path, mode: str, scripted: ScriptedUpstream
) -> None:
    """The hold waits less than the call's timeout, so the model reads why, not a timeout."""
    limits = CallLimits(timeout=6.0)
    async with connect(vault, audit, home, mode, timeout=120.0, limits=limits)() as client:
        result = await post(client, scripted, "/unanswered")
    text = result.content[0].text
    assert result.is_error and "waited 1 s for a person's approval" in text, text
    assert "clavis-mcp approve" in text and "not sent" in text and scripted.received == []


async def test_a_call_the_user_accepted_by_elicitation_is_not_held_again(
    vault: Vault, audit: AuditLog, home: Path, mode: str, scripted: ScriptedUpstream
) -> None:
    asked: list[str] = []

    async def accept(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    async with connect(vault, audit, home, mode, timeout=2.0)(accept) as client:
        result = await post(client, scripted, "/elicited")
        read = await client.call_tool(
            "call_service", {"service_name": "api", "method": "GET", "url": scripted.url("/r")}
        )
    assert not result.is_error, result.content
    assert not read.is_error and len(asked) == 1
    assert Approvals(vault.store).pending() == [] and [s.path for s in scripted.received] == ["/elicited", "/r"]
    (record,) = [r for r in audit.records() if r.get("source") == "mcp" and r.get("path") == "/elicited"]
    assert record["reason"] == "approved by the user when the MCP client asked (elicitation)"


# -- the server as Claude Desktop runs it: `clavis-mcp` over stdio, the CLI in other processes ------

EXE = str(Path(sys.executable).parent / "clavis-mcp")


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, timeout=60, env=os.environ.copy())


async def test_the_stdio_server_holds_a_write_for_the_cli_in_another_process(
    home: Path, upstream: EchoUpstream, tmp_path: Path
) -> None:
    assert run_cli("init").returncode == 0
    added = run_cli("add", "echo", "--host", f"127.0.0.1:{upstream.port}", "--local", "--secret-stdin", stdin=SECRET)
    assert added.returncode == 0, added.stderr
    assert run_cli("policy", "echo", "--approvals", "writes", "--agent", "mcp").returncode == 0
    url = f"https://127.0.0.1:{upstream.port}/v1/"
    params = StdioServerParameters(command=EXE, args=[], env=dict(os.environ))
    with (tmp_path / "stderr.log").open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:  # no elicitation: it cannot ask
            for path, verb in (("approved", "approve"), ("denied", "deny")):
                call = asyncio.create_task(
                    client.call_tool("call_service", {"service_name": "echo", "method": "POST", "url": url + path})
                )
                with anyio.fail_after(30):
                    while not (listed := await asyncio.to_thread(run_cli, "approvals", "--json")).stdout.strip():
                        await asyncio.sleep(0.1)
                held_id = json.loads(listed.stdout)["id"]
                assert (await asyncio.to_thread(run_cli, verb, held_id)).returncode == 0
                result = await call
                if verb == "approve":
                    assert not result.is_error, result.content
                else:
                    text = result.content[0].text
                    assert result.is_error and "cli denied this request" in text and "not sent" in text
    assert [r.path for r in upstream.received] == ["/v1/approved"]
