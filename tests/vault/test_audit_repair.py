"""Issue 20.2 and 20.7: a torn tail from a failed append is cut off by the next append and noted
in the chain, while damage elsewhere still fails; a checkpoint damaged in both slots is
re-anchored by ``audit repair``, which leaves its own record."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, AuditWriteError, Vault
from clavis_mcp.vault.audit import anchor as audit_anchor
from clavis_mcp.vault.audit import files as audit_files
from clavis_mcp.vault.audit.chain import encode


def write(audit: AuditLog, count: int) -> None:
    for _ in range(count):
        audit.append(source="mcp", service="svc", status=200, decision="injected")


def fail_halfway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next append writes half its line, then meets a full disk (no reserve to give back)."""
    real = audit_files.os.write
    calls: list[int] = []

    def write_half(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audit_files.os, "write", write_half)


def lines(home: Path) -> list[bytes]:
    return (home / "audit.jsonl").read_bytes().splitlines(True)


def test_a_torn_tail_from_a_failed_append_is_cut_by_the_next_append_and_noted(
    audit: AuditLog, vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(audit, 3)
    with monkeypatch.context() as patch:
        fail_halfway(patch)
        with pytest.raises(AuditWriteError, match="No space left on device"):
            audit.append(source="mcp", service="svc", decision="injected")
    assert not lines(home)[-1].endswith(b"\n")  # half a record: the failed append's
    waiting = audit.verify()
    assert waiting.ok and "torn record" in waiting.summary(), waiting.summary()
    write(AuditLog.for_vault(vault), 1)  # another process: it finds the torn tail, not its own end
    assert all(line.endswith(b"\n") for line in lines(home))
    last = json.loads(lines(home)[-1])
    assert last["seq"] == 4 and last["repaired"] > 0
    report = audit.verify()
    assert report.ok and report.count == 4 and report.repairs == 1, report.summary()
    assert "1 torn record(s) of failed appends cut off" in report.summary()


def test_an_edit_in_the_middle_still_fails_after_a_repair(
    audit: AuditLog, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(audit, 3)
    with monkeypatch.context() as patch:
        fail_halfway(patch)
        with pytest.raises(AuditWriteError):
            audit.append(source="mcp", decision="injected")
    write(audit, 2)
    assert audit.verify().ok
    edited = lines(home)
    record = json.loads(edited[1])
    record["status"] = 500
    (home / "audit.jsonl").write_bytes(b"".join([edited[0], encode(record), *edited[2:]]))
    report = audit.verify()
    assert not report.ok and report.location == "audit.jsonl line 2" and "altered" in (report.problem or "")


def test_a_torn_record_the_checkpoint_covers_is_not_repaired_away(audit: AuditLog, home: Path) -> None:
    write(audit, 5)
    kept = lines(home)
    (home / "audit.jsonl").write_bytes(b"".join([*kept[:4], kept[4][:40]]))  # record 5 cut by an editor
    assert "records 5-5 were removed" in (audit.verify().problem or "")
    write(AuditLog.for_vault(audit._anchor._vault), 1)
    report = audit.verify()
    assert not report.ok and "expected record 5, found record 6" in (report.problem or ""), report.summary()


@pytest.mark.parametrize("fresh", [True, False], ids=["another process", "the same process"])
def test_a_whole_genuine_record_whose_newline_was_removed_is_finished_not_cut(
    audit: AuditLog, vault: Vault, home: Path, fresh: bool
) -> None:
    write(audit, 3)
    audit.append(source="agent-x", service="prod-db", status=200, decision="injected", reason="evidence")
    log = home / "audit.jsonl"
    log.write_bytes(log.read_bytes()[:-1])  # only the newline ending the last genuine record
    write(AuditLog.for_vault(vault) if fresh else audit, 1)
    records = [json.loads(line) for line in lines(home)]
    assert all(line.endswith(b"\n") for line in lines(home))
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5] and records[3]["reason"] == "evidence"
    assert "repaired" not in records[4]  # nothing was cut
    report = audit.verify()
    assert report.ok and report.count == 5 and report.repairs == 0, report.summary()


def _damage_both_slots(home: Path) -> None:
    with (home / "audit.jsonl.lock").open("r+b") as handle:
        for slot in range(2):
            handle.seek(slot * audit_anchor.SLOT_BYTES + 10)
            handle.write(b"torn")


def test_audit_repair_reanchors_a_checkpoint_damaged_in_both_slots_and_records_it(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    write(audit, 3)
    _damage_both_slots(home)
    writer = AuditLog.for_vault(vault)
    with pytest.raises(AuditWriteError, match="checkpoint .* is damaged.*audit repair"):
        writer.append(source="mcp")
    report = audit.verify()
    assert not report.ok and report.location == "audit.jsonl.lock"
    assert "clavis-mcp audit repair --yes" in (report.problem or "")
    repair = audit.repair_checkpoint(source="cli")
    assert repair is not None and repair["reanchored"] == 3 and repair["seq"] == 4 and repair["action"] == "repair"
    assert audit.repair_checkpoint(source="cli") is None  # nothing left to repair
    write(writer, 1)
    report = audit.verify()
    assert report.ok and report.count == 5 and report.reanchored == (3,), report.summary()
    assert "re-anchored (audit repair) at record 3" in report.summary()


def test_audit_repair_refuses_a_log_whose_records_do_not_verify(audit: AuditLog, home: Path) -> None:
    write(audit, 3)
    edited = lines(home)
    record = json.loads(edited[1])
    record["status"] = 500
    (home / "audit.jsonl").write_bytes(b"".join([edited[0], encode(record), edited[2]]))
    _damage_both_slots(home)
    with pytest.raises(AuditWriteError, match="does not verify.*BROKEN at audit.jsonl line 2"):
        audit.repair_checkpoint(source="cli")
