"""The audit log's append lock handle (vault/audit/files.py AppendLock)."""

from __future__ import annotations

import gc
import os
import tracemalloc
import warnings
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


def test_a_forked_child_locks_through_a_handle_of_its_own(tmp_path: Path) -> None:
    """One open file is one ``flock`` holder: a child that locked through the handle it inherited
    would not exclude its parent. The process id the handle was opened in is compared with the one
    the module's fork hook keeps, with no ``getpid`` per record."""
    lock = AppendLock(tmp_path / "audit.jsonl.lock")
    with lock:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # other tests' threads: the child only locks and exits
        child = os.fork()
    if child == 0:
        code = 1
        try:
            with lock:
                code = 0 if lock._handle[3] == os.getpid() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with lock:
        assert lock._handle[3] == os.getpid()
