"""The audit reserve's held handle is shared by every thread that checks, gives back and closes:
threads checking while another process gives the reserve back see no refusal and leak no file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from clavis_mcp.vault import AuditLog, AuditWriteError, Vault


def test_threads_checking_while_another_process_gives_the_reserve_back_are_never_refused(vault: Vault) -> None:
    audit = AuditLog.for_vault(vault)
    audit.append(source="mcp", decision="injected")
    refusals: list[str] = []
    stop = threading.Event()

    def check() -> None:
        while not stop.is_set():
            try:
                audit.check_writable()
            except AuditWriteError as exc:
                refusals.append(str(exc))

    def give_back(path: Path) -> None:  # what another process's record on a full disk does
        for _ in range(3000):
            os.truncate(path, 0)
        stop.set()

    opened = len(os.listdir("/proc/self/fd"))
    threads = [threading.Thread(target=check) for _ in range(2)]
    threads.append(threading.Thread(target=give_back, args=(audit.files.reserve_path,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    assert refusals == []
    assert len(os.listdir("/proc/self/fd")) <= opened  # the reserves opened meanwhile were all closed
