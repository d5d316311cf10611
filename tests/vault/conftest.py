"""Fixtures shared by the vault's tests: the audit review index, the approvals queue on each store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import Approvals
from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.storage.sqlite import SQLiteStore


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def index(log_path: Path) -> Iterator[AuditIndex]:
    built = AuditIndex(LogFiles(log_path))
    yield built
    built.close()


@pytest.fixture(params=["memory", "sqlite"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Approvals]:
    if request.param == "memory":
        vault = Vault.in_memory(tmp_path)
        yield Approvals(vault.store)
        vault.close()
    else:
        SQLiteStore.create(tmp_path / "vault.db", {"vault_id": "test"}).close()
        opened = Approvals(tmp_path)
        yield opened
        opened.close()
