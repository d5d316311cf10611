"""Record ids are drawn from the system many at a time (issue 18: a ``getrandom`` per record);
they stay 8 random bytes each, never repeat across a refill, and a forked child never hands out
the ids left in the pool it inherited."""

from __future__ import annotations

import os
import re
import warnings

from clavis_mcp.vault import AuditLog
from clavis_mcp.vault.audit.log import _IDS_AT_ONCE, _Ids


def test_ids_are_sixteen_hex_digits_and_unique_across_refills(audit: AuditLog) -> None:
    ids = [audit.append(source="mcp", service="svc", decision="injected") for _ in range(_IDS_AT_ONCE + 10)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", record_id) for record_id in ids)
    assert len(set(ids)) == len(ids)
    assert [record["id"] for record in audit.records()] == ids


def test_a_forked_child_draws_ids_of_its_own() -> None:
    ids = _Ids()
    ids.draw()  # the pool is full: the child inherits the rest
    reading, writing = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # other tests' threads: the child only draws and exits
        child = os.fork()
    if child == 0:
        try:
            os.write(writing, ids.draw().encode())
        finally:
            os._exit(0)
    os.close(writing)
    drawn_by_child = os.read(reading, 64).decode()
    os.close(reading)
    os.waitpid(child, 0)
    assert re.fullmatch(r"[0-9a-f]{16}", drawn_by_child)
    assert drawn_by_child != ids.draw()
