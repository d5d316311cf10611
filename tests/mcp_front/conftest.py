"""Fixtures of the MCP front's tests: a real MCP client session on the real server, and a scripted
loopback upstream registered as the local service ``api``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from tests.conftest import SECRET, make_service
from tests.mcp_front.scripted_upstream import ScriptedUpstream


@pytest.fixture
async def client(vault: Vault, audit: AuditLog, home: Path) -> AsyncIterator[Client]:
    """An in-memory MCP session; a fault of the server raises in the test, and the gateway is closed."""
    gateway = Gateway(vault, audit, LocalCA(home / "certs"))
    async with Client(build_server(gateway), raise_exceptions=True) as session:
        yield session
    await gateway.aclose()


@pytest.fixture
def scripted(vault: Vault, upstream_ca: trustme.CA) -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream.start(upstream_ca)
    vault.add_service(make_service("api", f"127.0.0.1:{server.port}", local=True), validate_secret(SECRET))
    yield server
    server.stop()
