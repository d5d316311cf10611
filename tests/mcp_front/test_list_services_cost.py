"""list_services through a real in-memory MCP session reads the listing, not the proxy's snapshot:
listing services decrypts no secret (issue 18.4: the snapshot decrypted every credential in the
vault on a first listing), and an OAuth method still reads as it will once upgraded."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.keys.crypto import DataKey
from tests.conftest import SECRET, make_service

pytestmark = pytest.mark.anyio


async def test_listing_services_decrypts_no_secret(
    vault: Vault, audit: AuditLog, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        vault.add_service(make_service(name, f"{name}.example"), validate_secret(SECRET))
    opened: list[str] = []
    real_open = DataKey.open

    def counting(self: DataKey, blob: bytes, aad: bytes, what: str) -> bytes:
        opened.append(what)
        return real_open(self, blob, aad, what)

    monkeypatch.setattr(DataKey, "open", counting)
    async with Client(build_server(Gateway(vault, audit, LocalCA(home / "certs")))) as client:
        listed = (await client.call_tool("list_services", {})).structured_content["services"]
    assert [(s["name"], s["auth_method"]) for s in listed] == [
        ("a", "header Authorization: Bearer {secret}"),
        ("b", "header Authorization: Bearer {secret}"),
    ]
    assert not [what for what in opened if "secret of" in what]


async def test_a_page_of_services_parses_only_the_page_not_the_whole_vault(
    vault: Vault, audit: AuditLog, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.add_services([(make_service(f"s{i:03d}", f"s{i:03d}.example"), validate_secret(SECRET)) for i in range(60)])
    fresh = Vault.open(vault.home)  # a new process's vault: nothing parsed yet
    parsed: list[str] = []
    real_parse = Vault._parse

    def counting(self: Vault, name: str, definition: str) -> object:
        parsed.append(name)
        return real_parse(self, name, definition)

    monkeypatch.setattr(Vault, "_parse", counting)
    try:
        async with Client(build_server(Gateway(fresh, audit, LocalCA(home / "certs")))) as client:
            page = (await client.call_tool("list_services", {"limit": 5})).structured_content
    finally:
        fresh.close()
    assert [s["name"] for s in page["services"]] == [f"s{i:03d}" for i in range(5)]
    assert page["total"] == 60
    assert sorted(set(parsed)) == [f"s{i:03d}" for i in range(5)]
