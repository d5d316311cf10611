"""Fixtures shared by the audit review index's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clavis_mcp.vault.audit.files import LogFiles
from clavis_mcp.vault.audit.index import AuditIndex


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def index(log_path: Path) -> Iterator[AuditIndex]:
    built = AuditIndex(LogFiles(log_path))
    yield built
    built.close()
