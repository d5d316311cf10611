"""The MCP tools see a service kept by reference as its resolved value, never the stored
reference form: get_credentials masks (or, under a ``full`` policy, reveals) the value the proxy
would inject, and an unresolvable reference is a tool error saying what to check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Secret, Vault
from clavis_mcp.vault.refs import cache, parse, stored
from tests.conftest import make_service

pytestmark = pytest.mark.anyio

VALUE = "sk-mcp-ref-value-Lk8Jh6Gf4Ds2Aq0Zx"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
async def client(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Client]:
    async with Client(build_server(Gateway(vault, audit, LocalCA(home / "certs")))) as session:
        yield session


async def test_get_credentials_masks_the_resolved_value_not_the_reference(
    client: Client, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REF_MCP_KEY", VALUE)
    vault.add_service(make_service("svc", "api.svc.test"), stored(parse("env://REF_MCP_KEY")))
    result = await client.call_tool("get_credentials", {"service_name": "svc"})
    text = json.dumps(result.model_dump())
    assert not result.is_error and VALUE not in text and "clavis-ref" not in text
    assert result.structured_content is not None
    assert result.structured_content["fingerprint"] == vault.keyed(Secret(VALUE)).fingerprint


async def test_an_unresolvable_reference_is_a_tool_error_saying_what_to_check(
    client: Client, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REF_MCP_GONE", raising=False)
    vault.add_service(make_service("svc", "api.svc.test"), stored(parse("env://REF_MCP_GONE")))
    result = await client.call_tool("get_credentials", {"service_name": "svc"})
    assert result.is_error and "REF_MCP_GONE is not set" in json.dumps(result.model_dump())
