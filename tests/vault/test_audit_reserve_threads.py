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

    threads = [threading.Thread(target=check) for _ in range(2)]
    threads.append(threading.Thread(target=give_back, args=(audit.files.reserve_path,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    assert refusals == []
    assert _open_reserves(audit.files.reserve_path) == []  # the reserves opened meanwhile were all closed


def _open_reserves(path: Path) -> list[str]:
    """This process's descriptors open on the reserve file (not all of its descriptors: other
    tests' background threads open and close their own files at any time)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # closed since it was listed
            continue
        if target.removesuffix(" (deleted)") == str(path):
            found.append(fd)
    return found
