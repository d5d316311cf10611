"""The audit log's append lock handle (vault/audit/files.py AppendLock)."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from clavis_mcp.vault.audit.files import AppendLock


def test_append_locks_dropped_leave_nothing_behind(tmp_path: Path) -> None:
    """Review: each lock registered a fork hook that nothing could remove, so a long-running UI
    (a new AuditLog each time the log changed) grew by ~300 bytes per log it ever opened."""
    path = tmp_path / "audit.jsonl.lock"
    for _ in range(100):  # warm: whatever the first uses allocate once
        with AppendLock(path):
            pass
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5_000):
            with AppendLock(path):
                pass
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept by 5,000 dropped locks"
