"""The MCP bundle: validated and packed by the official tooling (npm @anthropic-ai/mcpb, pinned),
self-contained, and in step with the server it describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from mcp import Client

from bundle.build import MCPB, ROOT, build
from clavis_mcp.certs import LocalCA
from clavis_mcp.mcp_front import Gateway, build_server
from clavis_mcp.vault import AuditLog, Vault

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert MCPB.exists(), f"{MCPB} is missing: run scripts/ensure-node-deps (make test does)"
    return build(tmp_path_factory.mktemp("bundle") / "clavis-mcp.mcpb")


@pytest.fixture(scope="module")
def unpacked(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(target)
    return target


def test_bundle_is_valid_for_the_official_tooling(bundle: Path) -> None:
    info = subprocess.run([str(MCPB), "info", str(bundle)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0 and "clavis-mcp.mcpb" in info.stdout


def test_bundle_carries_the_project_and_no_build_debris(unpacked: Path) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["version"] == project["project"]["version"]
    assert manifest["server"]["type"] == "uv" and (unpacked / manifest["server"]["entry_point"]).exists()
    for folder in project["tool"]["setuptools"]["package-dir"].values():
        assert (unpacked / folder / "__init__.py").exists(), folder
    assert (unpacked / "vault" / "connectors.toml").exists() and (unpacked / "pyproject.toml").exists()
    assert not list(unpacked.rglob("__pycache__"))


@pytest.mark.anyio
async def test_manifest_lists_the_server_tools_in_order(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    vault = Vault.create(home)
    try:
        server = build_server(Gateway(vault, AuditLog.for_vault(vault), LocalCA(home / "certs")))
        async with Client(server) as client:
            served = [t.name for t in (await client.list_tools()).tools]
    finally:
        vault.close()
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert [t["name"] for t in manifest["tools"]] == served


def test_unpacked_bundle_serves_mcp_from_its_own_files(unpacked: Path, tmp_path: Path) -> None:
    """The entry point starts the server from the bundle's copy of the code, not this checkout."""
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    probe = "import mcp_front, sys; print(mcp_front.__file__, file=sys.stderr)"
    env = {"PATH": os.defpath, "CLAVIS_HOME": str(tmp_path / "no-vault-yet")}
    where = subprocess.run([sys.executable, "-c", probe], cwd=unpacked, capture_output=True, text=True, env=env)
    assert where.stderr.strip() == str(unpacked / "mcp_front" / "__init__.py")
    served = subprocess.run([sys.executable, "server_main.py"], cwd=unpacked, input=json.dumps(request) + "\n",
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert json.loads(served.stdout.splitlines()[0])["result"]["serverInfo"]["name"] == "clavis-mcp"
    assert "clavis-mcp init" in served.stderr  # no vault there: the server starts and says what to do
