"""The audit reserve is held open once whole (issue 18: the check before each request is one
``fstat`` of the file held, not a path lookup): a reserve another process gave back is seen at
the next check, and one deleted meanwhile still gives its room to the record that needs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, AuditWriteError, Vault
from tests.faults.conftest import fill


def test_a_reserve_another_process_gave_back_is_seen_at_the_next_check(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    other = AuditLog.for_vault(vault)
    try:
        audit.check_writable()
        other.check_writable()  # both hold the one reserve file
        fill(home)
        assert other.files.release_reserve()  # the other's record met the full disk ...
        filler = fill(home)  # ... and took the room given back
        with pytest.raises(AuditWriteError, match="No space left on device"):
            audit.check_writable()
        filler.unlink()
        audit.check_writable()
        audit.append(source="mcp", decision="injected")
    finally:
        other.close()


def test_a_reserve_deleted_meanwhile_still_gives_its_room_to_a_record(audit: AuditLog, home: Path) -> None:
    audit.check_writable()
    audit.files.reserve_path.unlink()
    fill(home)
    written = 0
    for _ in range(200):
        try:
            audit.check_writable()
        except AuditWriteError:
            break
        audit.append(source="mcp", decision="injected")  # never refused once the check passed
        written += 1
    else:
        pytest.fail("the check never refused on a full disk")
    assert written >= 1
