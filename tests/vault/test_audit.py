from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clavis_mcp.vault import AuditLog, AuditWriteError, Vault
from clavis_mcp.vault.audit import anchor as audit_anchor
from clavis_mcp.vault.audit.anchor import VaultAnchor
from clavis_mcp.vault.audit.chain import GENESIS, Link, encode, seal
from clavis_mcp.vault.audit.log import path_without_query_values
from tests.vault.rawdb import fields_of, put_record, query

PATHS = [
    ("/v1/models", "/v1/models"),
    ("/v1/x?key=sk-123&b=2", "/v1/x?key=&b="),
    ("/search?q=a%20b", "/search?q="),
    ("", "/"),
    ("//evil.test/x?a=1", "//evil.test/x?a="),
    ("/x?", "/x"),
]


@pytest.mark.parametrize(("path", "recorded"), PATHS, ids=[p[0] or "empty" for p in PATHS])
def test_query_values_never_reach_the_log(path: str, recorded: str) -> None:
    assert path_without_query_values(path) == recorded


@given(st.text(alphabet="ab=&+%2F;?#é \x00", max_size=24))
def test_query_names_are_read_as_parse_qsl_reads_them(query: str) -> None:
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    expected = "/x?" + "&".join(f"{name}=" for name in names) if query else "/x"
    assert path_without_query_values("/x?" + query) == expected


def write_records(audit: AuditLog, count: int) -> list[str]:
    return [audit.append(source="mcp", service="svc", status=200, decision="injected") for _ in range(count)]


def test_append_writes_one_private_json_line_per_record(audit: AuditLog, home: Path) -> None:
    first = audit.append(source="mcp", service="svc", path="/a?token=query-secret-value", decision="injected")
    second = audit.append(source="cli", action="add", service="svc")
    records = list(audit.records())
    assert [r["id"] for r in records] == [first, second]
    assert [r["seq"] for r in records] == [1, 2]
    assert records[0]["prev"] == GENESIS and records[1]["prev"] == records[0]["mac"]
    assert records[0]["path"] == "/a?token="
    assert (home / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    assert "query-secret-value" not in (home / "audit.jsonl").read_text()
    assert all(json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines())


BAD_FIELDS = [
    ({"authorization": "Bearer x"}, "unknown audit fields"),
    ({"id": "chosen"}, "unknown audit fields"),
    ({"time": "2020-01-01T00:00:00+00:00"}, "unknown audit fields"),
    ({"seq": 7}, "unknown audit fields"),
    ({"reason": {"headers": {"Authorization": "x"}}}, "plain value"),
    ({"path": ["/a"]}, "plain value"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS, ids=["header", "id", "time", "seq", "dict", "list"])
def test_fields_the_log_does_not_define_are_refused(audit: AuditLog, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        audit.append(**fields)
    assert list(audit.records()) == []


def test_subclasses_of_plain_values_are_recorded_as_their_values(audit: AuditLog) -> None:
    audit.append(status=HTTPStatus.OK, method=type("Method", (str,), {})("GET"), redactions=False)
    (record,) = audit.records()
    assert (record["status"], record["method"], record["redactions"]) == (200, "GET", False)


def test_fresh_log_verifies_with_its_count(audit: AuditLog) -> None:
    assert audit.verify().ok and audit.verify().count == 0
    write_records(audit, 3)
    report = audit.verify()
    assert report.ok, report.summary()
    assert report.summary().startswith("OK: 3 records")


def test_the_key_is_kept_in_the_vault_and_survives_reopening(vault: Vault, home: Path) -> None:
    audit = AuditLog.for_vault(vault)
    write_records(audit, 2)
    key = VaultAnchor(vault, home / "audit.jsonl.lock").key
    assert len(key) == 32
    assert key not in (home / "vault.db").read_bytes() and key.hex().encode() not in (home / "vault.db").read_bytes()
    reopened = Vault.open(home)
    try:
        assert VaultAnchor(reopened, home / "audit.jsonl.lock").key == key
        assert AuditLog.for_vault(reopened).verify().ok
    finally:
        reopened.close()


def edit_status(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[2])
    record["status"] = 500
    return [*lines[:2], encode(record), *lines[3:]]


def forge_with_another_key(lines: list[bytes]) -> list[bytes]:
    previous = json.loads(lines[1])
    forged = seal(b"k" * 32, None, {"id": "f", "time": previous["time"], "source": "mcp"})
    forged.update(seq=3, prev=previous["mac"])
    return [*lines[:2], encode(forged), *lines[2:]]


TAMPERING: list[tuple[str, Callable[[list[bytes]], list[bytes]], str, str]] = [
    ("edited", edit_status, "audit.jsonl line 3", "altered"),
    ("deleted", lambda ls: ls[:2] + ls[3:], "audit.jsonl line 3", "expected record 3, found record 4"),
    ("reordered", lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], "audit.jsonl line 3", "expected record 3"),
    ("duplicate inserted", lambda ls: [*ls[:3], ls[1], *ls[3:]], "audit.jsonl line 4", "expected record 4"),
    ("forged inserted", forge_with_another_key, "audit.jsonl line 3", "altered or forged"),
    ("head removed", lambda ls: ls[2:], "audit.jsonl line 1", "expected record 1, found record 3"),
    ("end removed", lambda ls: ls[:3], "end of log", "records 4-5 were removed"),
    ("emptied", lambda ls: [], "end of log", "records 1-5 were removed"),
    ("checkpointed end torn", lambda ls: [*ls[:4], ls[4][:30]], "end of log", "records 5-5 were removed"),
    (
        "line torn in the middle",
        lambda ls: [*ls[:2], ls[2][:30] + b"\n", *ls[3:]],
        "audit.jsonl line 3",
        "not a readable record",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("change", "where", "problem"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING])
def test_verify_reports_the_first_tampered_record(
    audit: AuditLog, home: Path, change: Callable[[list[bytes]], list[bytes]], where: str, problem: str
) -> None:
    write_records(audit, 5)
    log = home / "audit.jsonl"
    log.write_bytes(b"".join(change(log.read_bytes().splitlines(True))))
    report = audit.verify()
    assert not report.ok
    assert report.location == where
    assert problem in (report.problem or "")


def test_an_append_after_a_cut_does_not_hide_the_cut(audit: AuditLog, home: Path) -> None:
    write_records(audit, 5)
    log = home / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(True)[:3]))
    write_records(audit, 1)
    report = audit.verify()
    assert report.location == "audit.jsonl line 4"
    assert "expected record 4, found record 6" in (report.problem or "")


def test_a_record_whose_checkpoint_was_lost_in_a_crash_is_chained_on(audit: AuditLog, vault: Vault, home: Path) -> None:
    write_records(audit, 2)
    anchor = VaultAnchor(vault, home / "audit.jsonl.lock")
    before = anchor.head()
    write_records(audit, 1)
    assert before is not None
    anchor.advance(before)  # as if the process died between the write and the checkpoint
    write_records(audit, 1)
    report = audit.verify()
    assert report.ok and report.count == 4, report.summary()


def test_rotation_keeps_one_chain_across_files(vault: Vault, home: Path) -> None:
    audit = AuditLog.for_vault(vault, max_bytes=700)
    ids = write_records(audit, 12)
    rotated = sorted(home.glob("audit.jsonl.*[0-9]"))
    assert len(rotated) >= 3
    assert all(p.stat().st_size <= 700 for p in [*rotated, home / "audit.jsonl"])
    assert [r["id"] for r in audit.records()] == ids
    first_of_second = json.loads((home / "audit.jsonl.2").read_bytes().splitlines()[0])
    last_of_first = json.loads((home / "audit.jsonl.1").read_bytes().splitlines()[-1])
    assert first_of_second["prev"] == last_of_first["mac"]
    report = audit.verify()
    assert report.ok and report.count == 12 and report.files == len(rotated) + 1, report.summary()

    (home / "audit.jsonl.1").unlink()
    report = audit.verify()
    assert report.location == "audit.jsonl.2 line 1" and "expected record 1" in (report.problem or "")


WRITER = """
import sys
from pathlib import Path
from clavis_mcp.vault import AuditLog, Vault
vault = Vault.open(Path(sys.argv[1]))
log = AuditLog.for_vault(vault, max_bytes=int(sys.argv[3]))
for i in range(int(sys.argv[2])):
    log.append(source="writer-" + sys.argv[4], service="svc", status=200, decision="injected")
vault.close()
"""


def test_concurrent_writers_in_several_processes_keep_one_valid_chain(vault: Vault, home: Path) -> None:
    processes, each = 4, 60
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(each), "20000", str(n)], cwd=Path.cwd())
        for n in range(processes)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0] * processes
    audit = AuditLog.for_vault(vault, max_bytes=20000)
    report = audit.verify()
    assert report.ok, report.summary()
    assert report.count == processes * each and report.files > 1
    records = list(audit.records())
    assert [r["seq"] for r in records] == list(range(1, processes * each + 1))
    assert {r["source"] for r in records} == {f"writer-{n}" for n in range(processes)}
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)


UNWRITABLE = {
    "missing folder": lambda home: home / "missing" / "audit.jsonl",
    "folder in the way": lambda home: (home / "blocked").mkdir() or home / "blocked",
}


@pytest.mark.parametrize("make_path", UNWRITABLE.values(), ids=UNWRITABLE.keys())
def test_unwritable_log_fails_closed_with_a_reason(vault: Vault, home: Path, make_path: Callable[[Path], Path]) -> None:
    log = AuditLog.for_vault(vault, make_path(home))
    with pytest.raises(AuditWriteError, match="cannot write the audit log .* requests are refused"):
        log.append(source="mcp")
    with pytest.raises(AuditWriteError, match="refused"):
        log.check_writable()


def test_a_checkpoint_that_cannot_be_saved_fails_closed(audit: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    write_records(audit, 1)

    def disk_full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(audit_anchor.os, "pwrite", disk_full)
    with pytest.raises(AuditWriteError, match="cannot write the audit log .*No space left on device"):
        audit.append(source="mcp")


def _damage_slot(home: Path, seq: int) -> None:
    with (home / "audit.jsonl.lock").open("r+b") as handle:
        handle.seek((seq % 2) * audit_anchor.SLOT_BYTES + 10)
        handle.write(b"torn")


def test_the_checkpoint_is_kept_sealed_in_the_private_lock_file(audit: AuditLog, home: Path, vault: Vault) -> None:
    [*_, last] = write_records(audit, 3)
    lock = home / "audit.jsonl.lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert last.encode() not in lock.read_bytes()  # sealed: neither the id nor the MAC in the clear
    assert json.loads((home / "audit.jsonl").read_bytes().splitlines()[-1])["mac"].encode() not in lock.read_bytes()
    assert fields_of(home, "audit", "legacy") is None  # the vault is not written per record
    assert query(home, "SELECT count(*) FROM records") == [(0,)]


def test_a_checkpoint_slot_torn_by_a_power_loss_leaves_the_one_before(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    write_records(audit, 3)
    _damage_slot(home, 3)
    assert audit.verify().ok  # checkpoint 2, log at 3: the log may run ahead of its checkpoint
    write_records(AuditLog.for_vault(vault), 1)  # another writer chains on record 3
    report = audit.verify()
    assert report.ok and report.count == 4, report.summary()
    log = home / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(True)[:2]))
    assert "records 3-4 were removed from the end" in (audit.verify().problem or "")


def test_a_checkpoint_damaged_in_both_slots_refuses_appends_with_the_reason(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    write_records(audit, 2)
    _damage_slot(home, 1)
    _damage_slot(home, 2)
    with pytest.raises(AuditWriteError, match="checkpoint .* is damaged"):
        AuditLog.for_vault(vault).append(source="mcp")


def _link(seq: int, mac: str = "a") -> Link:
    return Link(seq, mac * 64)


REACHES = [
    ("at it", [_link(4), _link(5)], _link(5), True),
    ("one past it", [_link(5), _link(6)], _link(5), True),
    ("many past it", [_link(40), _link(41)], _link(5), True),
    ("below it", [_link(3), _link(4)], _link(5), False),
    ("another record at its number", [_link(4), _link(5, "b")], _link(5), False),
    ("empty", [], _link(5), False),
]


@pytest.mark.parametrize(("written", "link", "reaches"), [r[1:] for r in REACHES], ids=[r[0] for r in REACHES])
def test_whether_the_checkpoint_reaches_a_record(
    vault: Vault, home: Path, written: list[Link], link: Link, reaches: bool
) -> None:
    anchor = VaultAnchor(vault, home / "audit.jsonl.lock")
    (home / "audit.jsonl.lock").write_bytes(b"")
    for checkpoint in written:
        anchor.advance(checkpoint)
    fd = os.open(home / "audit.jsonl.lock", os.O_RDONLY)
    try:
        assert anchor.reaches(link, fd) is reaches
    finally:
        os.close(fd)


def test_a_checkpoint_slot_being_rewritten_leaves_the_other_to_reach_a_record(vault: Vault, home: Path) -> None:
    anchor = VaultAnchor(vault, home / "audit.jsonl.lock")
    anchor.advance(_link(5))
    anchor.advance(_link(6))
    _damage_slot(home, 6)  # as a reader sees a slot half rewritten (with record 8)
    fd = os.open(home / "audit.jsonl.lock", os.O_RDONLY)
    try:
        assert anchor.reaches(_link(5), fd) and not anchor.reaches(_link(6), fd)
    finally:
        os.close(fd)


def test_a_checkpoint_kept_in_the_vault_by_an_earlier_version_is_carried_over(vault: Vault, home: Path) -> None:
    write_records(AuditLog.for_vault(vault), 3)
    link = json.loads((home / "audit.jsonl").read_bytes().splitlines()[-1])
    sealed = vault.seal(json.dumps({"seq": 3, "mac": link["mac"]}).encode(), audit_anchor.HEAD_CONTEXT)
    put_record(home, "audit", "legacy", {"key": None, "head": sealed})
    (home / "audit.jsonl.lock").unlink()  # as the earlier version left it: an empty lock file, or none
    log = home / "audit.jsonl"
    full = log.read_bytes()
    log.write_bytes(b"".join(full.splitlines(True)[:2]))
    assert "records 3-3 were removed" in (AuditLog.for_vault(vault).verify().problem or "")
    log.write_bytes(full)
    upgraded = AuditLog.for_vault(vault)
    write_records(upgraded, 1)
    report = upgraded.verify()
    assert report.ok and report.count == 4, report.summary()
    assert fields_of(home, "audit", "legacy") == {"key": None, "head": None}


def test_a_live_file_removed_between_records_gets_the_next_record_not_the_old_handle(
    audit: AuditLog, home: Path
) -> None:
    write_records(audit, 2)
    (home / "audit.jsonl").unlink()
    [third] = write_records(audit, 1)
    assert [json.loads(line)["id"] for line in (home / "audit.jsonl").read_bytes().splitlines()] == [third]
    assert "expected record 1" in (audit.verify().problem or "")  # the removal stays visible


def test_a_live_file_replaced_after_a_record_is_noticed_before_the_next_request(audit: AuditLog, home: Path) -> None:
    write_records(audit, 1)
    audit.check_writable()
    (home / "audit.jsonl").unlink()
    (home / "audit.jsonl").mkdir()
    with pytest.raises(AuditWriteError, match="requests are refused"):
        audit.check_writable()


def test_records_from_another_writer_that_rotated_the_log_keep_one_chain(vault: Vault, home: Path) -> None:
    mine, theirs = AuditLog.for_vault(vault, max_bytes=700), AuditLog.for_vault(vault, max_bytes=700)
    for _ in range(6):
        write_records(mine, 2)
        write_records(theirs, 3)
    report = mine.verify()
    assert report.ok and report.count == 30 and report.files >= 3, report.summary()


def test_a_lock_file_replaced_between_records_is_the_one_locked_and_checkpointed_next(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    """The lock file stays open between records: the one at the lock path is still the one used."""
    write_records(audit, 2)
    lock = home / "audit.jsonl.lock"
    replacement = home / "replacement"
    replacement.write_bytes(lock.read_bytes())
    os.replace(replacement, lock)
    write_records(audit, 1)
    last = json.loads((home / "audit.jsonl").read_bytes().splitlines()[-1])
    assert VaultAnchor(vault, lock).head() == Link(3, last["mac"])
    assert audit.verify().ok
