"""call_service looks its service and its approval policy up in the vault's snapshot, not with a
read of its own per call: a change made by another process (the CLI, the standalone proxy) is
still seen on the very next call. ``Vault.open`` on the same file is such a process: SQLite tells
one connection apart from another as it tells processes apart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.mcp_front.settings import ServiceSettings, save_settings
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.errors import UnknownService
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream
from tests.mcp_front.test_server import answering, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def other(vault: Vault) -> Iterator[Vault]:
    """The same vault opened by another process."""
    with Vault.open(vault.home) as opened:
        yield opened


@pytest.fixture
def gateway(vault: Vault, audit: AuditLog, home: Path) -> Gateway:
    return Gateway(vault, audit, LocalCA(home / "certs"))


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[Client]:
    async with Client(build_server(gateway)) as session:
        yield session


async def call(client: Client, scripted: ScriptedUpstream, method: str = "GET", **args: Any) -> Any:
    arguments = {"service_name": "api", "method": method, "url": scripted.url("/echo"), **args}
    return await client.call_tool("call_service", arguments)


def test_get_service_reads_again_once_another_process_changed_the_service(vault: Vault, other: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    vault.snapshot()  # current: get_service answers from it
    assert vault.get_service("api").methods == ()
    other.update_service(replace(other.get_service("api"), methods=("POST",)))
    assert vault.get_service("api").methods == ("POST",)
    other.remove_service("api")
    with pytest.raises(UnknownService, match="api"):
        vault.get_service("api")


def test_get_service_answers_a_change_of_this_process_at_once(vault: Vault) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    vault.list_services()  # the listing is current too
    vault.snapshot()
    vault.update_service(replace(vault.get_service("api"), methods=("GET",)))
    assert vault.get_service("api").methods == ("GET",)
    with pytest.raises(UnknownService, match="known services: api"):
        vault.get_service("nope")


async def test_call_service_follows_a_method_policy_changed_in_another_process_on_its_next_call(
    client: Client, scripted: ScriptedUpstream, other: Vault
) -> None:
    assert not (await call(client, scripted)).is_error
    other.update_service(replace(other.get_service("api"), methods=("POST",)))
    refused = await call(client, scripted)
    assert refused.is_error and "method policy allows: POST" in text_of(refused)
    other.update_service(replace(other.get_service("api"), methods=()))
    assert not (await call(client, scripted)).is_error
    assert len(scripted.received) == 2


async def test_call_service_refuses_a_service_another_process_removed_on_its_next_call(
    client: Client, scripted: ScriptedUpstream, other: Vault
) -> None:
    assert not (await call(client, scripted)).is_error
    other.remove_service("api")
    refused = await call(client, scripted)
    assert refused.is_error and "unknown service 'api'" in text_of(refused).lower()
    assert len(scripted.received) == 1


async def test_a_write_confirmation_another_process_sets_is_asked_on_the_next_call_and_lifted_on_the_next(
    gateway: Gateway, scripted: ScriptedUpstream, other: Vault
) -> None:
    callback, asked = answering("accept")
    async with Client(build_server(gateway), elicitation_callback=callback) as client:
        assert not (await call(client, scripted, "POST", data="1")).is_error
        assert asked == []
        save_settings(other, "api", ServiceSettings(confirm_writes=True))
        assert not (await call(client, scripted, "POST", data="2")).is_error
        assert len(asked) == 1 and "POST" in asked[0]
        assert not (await call(client, scripted, "GET")).is_error  # a read is not asked about
        save_settings(other, "api", ServiceSettings(confirm_writes=False))
        assert not (await call(client, scripted, "POST", data="3")).is_error
    assert len(asked) == 1
    assert [r.body for r in scripted.received if r.method == "POST"] == [b"1", b"2", b"3"]
