"""Issue 12.7: cutting the end of the audit log, and wiping it, together with its checkpoint.

The checkpoint lives in ``audit.jsonl.lock``, beside the log and with the same owner, so whoever
cuts the log can empty, delete or roll back that file too. The vault's sealed high-water mark
is what they cannot roll back with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mitmproxy.test import taddons, tflow

from clavis_mcp.addons.audit_trail import AuditTrail
from clavis_mcp.addons.flowmeta import SERVICE
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, AuditWriteError, Service, Vault
from clavis_mcp.vault.audit import anchor as audit_anchor
from clavis_mcp.vault.audit import log as audit_module
from clavis_mcp.vault.audit.anchor import VaultAnchor
from clavis_mcp.vault.audit.chain import Link, encode, seal
from clavis_mcp.vault.audit.log import Loss, cut_below, mark_due, pending_loss
from clavis_mcp.vault.errors import VaultCorrupted
from demo.echo_upstream import EchoUpstream
from tests.conftest import proxy_client
from tests.vault.rawdb import fields_of, put_record, query, raw

REFUSED = "lost records: .* acknowledge-loss"
WIPED_TO_2 = "at least 5 records existed, but the log and its checkpoint end at record 2"


def write(audit: AuditLog, count: int) -> list[str]:
    return [audit.append(source="mcp", service="svc", status=200, decision="injected") for _ in range(count)]


def keep_lines(home: Path, count: int) -> None:
    log = home / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(True)[:count]))


def lock_file(home: Path) -> Path:
    return home / "audit.jsonl.lock"


def mark(vault: Vault, home: Path) -> Link | None:
    return VaultAnchor(vault, lock_file(home)).mark()


def mark_seq(vault: Vault, home: Path) -> int:
    found = mark(vault, home)
    return found.seq if found else 0


@pytest.fixture
def no_timed_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only record counts and new files raise the mark, however slow the machine is today."""
    monkeypatch.setattr(audit_module, "MARK_SECONDS", float("inf"))


def a_proxy_ran_and_stopped(audit: AuditLog, count: int) -> None:
    write(audit, count)
    audit.close()  # a clean shutdown raises the vault's mark to the last record


HIDE_THE_CUT: dict[str, Callable[[Path, bytes], None]] = {
    "lock file emptied": lambda home, old: lock_file(home).write_bytes(b""),
    "lock file deleted": lambda home, old: lock_file(home).unlink(),
    "lock file rolled back": lambda home, old: lock_file(home).write_bytes(old),
}


@pytest.mark.parametrize("hide", HIDE_THE_CUT.values(), ids=HIDE_THE_CUT.keys())
def test_cutting_the_end_and_emptying_the_lock_file_is_broken(
    audit: AuditLog, home: Path, hide: Callable[[Path, bytes], None]
) -> None:
    write(audit, 3)
    lock_at_three = lock_file(home).read_bytes()
    a_proxy_ran_and_stopped(audit, 2)
    keep_lines(home, 3)
    hide(home, lock_at_three)
    report = audit.verify()
    assert not report.ok, report.summary()
    assert report.location == "end of log"
    assert "the vault says at least 5 records existed, but the log ends at record 3" in (report.problem or "")
    assert "records 4-5 were removed from the end" in (report.problem or "")


def test_rolling_back_the_lock_file_is_broken(audit: AuditLog, home: Path) -> None:
    write(audit, 2)
    older = lock_file(home).read_bytes()
    a_proxy_ran_and_stopped(audit, 3)
    lock_file(home).write_bytes(older)  # the log is whole: only its checkpoint went back
    report = audit.verify()
    assert (report.ok, report.location) == (False, "audit.jsonl.lock"), report.summary()
    assert "the checkpoint records 2 but the vault's high-water mark records 5" in (report.problem or "")


def test_emptying_the_lock_file_under_a_whole_log_is_broken(audit: AuditLog, home: Path) -> None:
    write(audit, 4)  # the vault's mark is at record 1 (this process's first): the lock file is all that covers 2-4
    lock_file(home).write_bytes(b"")
    report = audit.verify()
    assert (report.ok, report.location) == (False, "audit.jsonl.lock"), report.summary()
    assert "the checkpoint is missing although the log ends at record 4" in (report.problem or "")


def test_deleting_log_and_lock_is_broken_not_a_fresh_start(audit: AuditLog, home: Path) -> None:
    a_proxy_ran_and_stopped(audit, 5)
    (home / "audit.jsonl").unlink()
    lock_file(home).unlink()
    report = audit.verify()
    assert not report.ok, report.summary()
    assert report.summary() == (
        "BROKEN at end of log: the vault says at least 5 records existed, but the log has no records: "
        "records 1-5 were removed from the end, or the log was replaced by an older copy"
    )


def test_replacing_the_log_with_a_shorter_older_copy_is_broken(audit: AuditLog, home: Path) -> None:
    write(audit, 2)
    older_log, older_lock = (home / "audit.jsonl").read_bytes(), lock_file(home).read_bytes()
    a_proxy_ran_and_stopped(audit, 4)
    (home / "audit.jsonl").write_bytes(older_log)
    lock_file(home).write_bytes(older_lock)
    assert "records 3-6 were removed from the end" in (audit.verify().problem or "")


WIPES = {"after a clean shutdown": True, "after a crash": False}


@pytest.mark.parametrize("clean", WIPES.values(), ids=WIPES.keys())
def test_a_restart_after_a_wipe_does_not_start_a_new_chain_silently(vault: Vault, home: Path, clean: bool) -> None:
    before = AuditLog.for_vault(vault)
    write(before, 5)
    if clean:
        before.close()
    (home / "audit.jsonl").unlink()
    lock_file(home).unlink()
    restarted = AuditLog.for_vault(vault)
    with pytest.raises(AuditWriteError, match=REFUSED):
        restarted.check_writable()
    with pytest.raises(AuditWriteError, match=REFUSED):
        restarted.append(source="mcp", decision="injected")
    assert list(restarted.records()) == []  # no record 1 of a new chain


def test_a_running_writer_refuses_once_its_log_and_lock_are_wiped(audit: AuditLog, home: Path) -> None:
    write(audit, 5)  # no close: the vault's mark is at 1, but this process knows it wrote 5
    keep_lines(home, 2)
    lock_file(home).write_bytes(b"")
    with pytest.raises(AuditWriteError, match=WIPED_TO_2):
        audit.check_writable()
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.append(source="mcp", decision="injected")
    assert [r["seq"] for r in audit.records()] == [1, 2]


def test_a_wiped_log_refuses_the_request_before_it_leaves(audit: AuditLog, vault: Vault, home: Path) -> None:
    a_proxy_ran_and_stopped(audit, 3)
    (home / "audit.jsonl").unlink()
    lock_file(home).unlink()
    addon = AuditTrail(AuditLog.for_vault(vault))
    with taddons.context(addon):
        flow = tflow.tflow()
        flow.metadata[SERVICE] = "svc"
        addon.request(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert "acknowledge-loss" in flow.response.text


async def through_the_proxy(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, served: int, attack: Callable[[Path], None], tries: int
) -> list[httpx.Response]:
    """``served`` requests through the real proxy, then ``attack`` on the audit files, then
    ``tries`` more on the same connection; returns the answers to those."""
    url = f"https://127.0.0.1:{upstream.port}/v1/x"
    async with proxy_client(proxy, home) as client:
        for _ in range(served):
            assert (await client.get(url)).status_code == 200
        attack(home)
        return [await client.get(url) for _ in range(tries)]


def wipe(home: Path) -> None:
    (home / "audit.jsonl").unlink()
    lock_file(home).unlink()


@pytest.mark.anyio
async def test_the_proxy_refuses_requests_after_its_log_and_lock_are_wiped(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, audit: AuditLog
) -> None:
    [refused] = await through_the_proxy(proxy, home, upstream, 1, wipe, 1)
    assert refused.status_code == 503 and "acknowledge-loss" in refused.text
    assert len(upstream.received) == 1  # the refused request never left
    assert list(audit.records()) == []


def cut_in_place_and_pad(home: Path, keep: int, pad: Callable[[list[bytes]], bytes]) -> None:
    """Cut the log to its first ``keep`` records in place (the same file, so the same inode), then
    pad it until it is longer than before: to a writer that only compares sizes, it has grown."""
    log = home / "audit.jsonl"
    lines = log.read_bytes().splitlines(True)
    old_size, filler = log.stat().st_size, pad(lines[:keep])
    with log.open("r+b") as handle:
        handle.truncate(len(b"".join(lines[:keep])))
        handle.seek(0, os.SEEK_END)
        while handle.tell() <= old_size:
            handle.write(filler)


PADDINGS: dict[str, Callable[[list[bytes]], bytes]] = {
    "blank lines": lambda kept: b"\n",
    "junk": lambda kept: b"junk\n",
    "copies of the records kept": lambda kept: b"".join(kept),
}


def cut_to_one_padded_lock_emptied(home: Path) -> None:
    cut_in_place_and_pad(home, 1, PADDINGS["blank lines"])
    lock_file(home).write_bytes(b"")


@pytest.mark.parametrize("pad", PADDINGS.values(), ids=PADDINGS.keys())
def test_a_cut_log_padded_past_its_old_size_refuses_before_the_request_leaves(
    audit: AuditLog, home: Path, pad: Callable[[list[bytes]], bytes]
) -> None:
    write(audit, 7)
    cut_in_place_and_pad(home, 3, pad)
    lock_file(home).write_bytes(b"")
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.check_writable()
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.append(source="mcp", decision="injected")
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.check_writable()  # and so for every later request


def test_a_cut_found_by_an_append_is_refused_until_acknowledged_even_at_the_size_this_process_left(
    audit: AuditLog, vault: Vault, home: Path
) -> None:
    write(audit, 7)
    log = home / "audit.jsonl"
    size = log.stat().st_size
    cut_in_place_and_pad(home, 3, PADDINGS["blank lines"])
    lock_file(home).write_bytes(b"")
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.append(source="mcp", decision="injected")
    os.truncate(log, size)  # exactly as this process's last record left it
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.check_writable()
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.append(source="mcp", decision="injected")
    assert AuditLog.for_vault(vault).acknowledge_loss(source="cli") is not None
    audit.check_writable()
    write(audit, 1)
    report = audit.verify()
    assert report.ok and report.count == 5 and report.losses == ((4, 7),), report.summary()


def pad_to_the_size_left_and_empty_the_lock_file(home: Path) -> None:
    size = (home / "audit.jsonl").stat().st_size
    cut_in_place_and_pad(home, 3, PADDINGS["blank lines"])
    os.truncate(home / "audit.jsonl", size)
    lock_file(home).write_bytes(b"")


CUTS_THAT_CHAIN_ON = {
    "padded past its old size, checkpoint kept": lambda home: cut_in_place_and_pad(home, 3, PADDINGS["blank lines"]),
    "padded to the size this process left": pad_to_the_size_left_and_empty_the_lock_file,
}


@pytest.mark.parametrize("cut", CUTS_THAT_CHAIN_ON.values(), ids=CUTS_THAT_CHAIN_ON.keys())
def test_a_cut_the_next_record_chains_across_lets_the_request_out_recorded_and_shows_the_gap(
    audit: AuditLog, home: Path, cut: Callable[[Path], None]
) -> None:
    write(audit, 7)
    cut(home)
    audit.check_writable()  # the next record follows record 7 (the checkpoint's, or this process's last)
    write(audit, 1)
    report = audit.verify()
    assert "expected record 4, found record 8" in (report.problem or ""), report.summary()


@pytest.mark.anyio
async def test_the_proxy_sends_nothing_upstream_once_its_log_is_cut_and_padded_past_its_old_size(
    proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, local_service: Service, audit: AuditLog
) -> None:
    refused = await through_the_proxy(proxy, home, upstream, 3, cut_to_one_padded_lock_emptied, 2)
    assert [r.status_code for r in refused] == [503, 503] and "acknowledge-loss" in refused[0].text
    assert len(upstream.received) == 3  # the refused requests never left
    assert [r["seq"] for r in audit.records()] == [1]


def test_acknowledging_the_loss_records_it_and_appends_resume(vault: Vault, home: Path) -> None:
    a_proxy_ran_and_stopped(AuditLog.for_vault(vault), 5)
    full = (home / "audit.jsonl").read_bytes()
    (home / "audit.jsonl").unlink()
    lock_file(home).unlink()
    audit = AuditLog.for_vault(vault)
    assert audit.pending_loss() == Loss(1, 5, Link(5, json.loads(full.splitlines()[-1])["mac"]))
    record = audit.acknowledge_loss(source="cli")
    assert record is not None
    assert (record["seq"], record["lost_from"], record["decision"]) == (6, 1, "lost")
    assert record["action"] == "acknowledge-loss"
    assert audit.acknowledge_loss(source="cli") is None  # nothing more to acknowledge
    write(audit, 2)
    report = audit.verify()
    assert report.ok, report.summary()
    assert report.count == 3 and report.losses == ((1, 5),)
    assert report.summary().endswith("chain and checkpoint intact; acknowledged loss of records 1-5")
    assert [r["seq"] for r in audit.records()] == [6, 7, 8]


def test_a_partial_loss_is_acknowledged_from_the_last_record_kept(audit: AuditLog, home: Path) -> None:
    write(audit, 3)
    lock_at_three = lock_file(home).read_bytes()
    write(audit, 4)
    keep_lines(home, 3)
    lock_file(home).write_bytes(lock_at_three)
    with pytest.raises(AuditWriteError, match=REFUSED):
        audit.append(source="mcp")  # also puts what this process wrote (7) into the vault's mark
    record = audit.acknowledge_loss(source="cli")
    assert record is not None and (record["lost_from"], record["seq"]) == (4, 8)
    report = audit.verify()
    assert report.ok and report.losses == ((4, 7),), report.summary()


def test_records_cut_before_an_acknowledged_loss_are_still_broken(audit: AuditLog, home: Path) -> None:
    write(audit, 3)
    audit.close()
    keep_lines(home, 1)
    lock_file(home).unlink()
    assert audit.acknowledge_loss(source="cli") is not None  # records 2-3 lost
    log = home / "audit.jsonl"
    log.write_bytes(log.read_bytes().splitlines(True)[-1])  # and now record 1 goes too
    report = audit.verify()
    assert report.location == "audit.jsonl line 1"
    assert "expected record 1, found record 4 (the acknowledged loss of records 2-3)" in (report.problem or "")


def test_an_acknowledgement_cannot_be_written_by_whoever_edits_the_log(audit: AuditLog, home: Path) -> None:
    a_proxy_ran_and_stopped(audit, 3)
    log = home / "audit.jsonl"
    forged = seal(b"k" * 32, Link(3, "0" * 64), {"id": "f", "source": "cli", "lost_from": 1, "decision": "lost"})
    log.write_bytes(encode(forged))
    assert "altered or forged" in (audit.verify().problem or "")


REMOVE_THE_MARK = {
    "entries deleted, an emptied legacy record put in": "DELETE FROM streams; "
    "INSERT INTO records (kind, key, service, fields, version) "
    """VALUES ('audit', 'legacy', NULL, '{"head": null, "key": null}', 1)""",
    "stream renamed": "UPDATE streams SET stream = 'elsewhere'",
    "entries deleted, the lock file kept": "DELETE FROM streams",
}


@pytest.mark.parametrize("sql", REMOVE_THE_MARK.values(), ids=REMOVE_THE_MARK.keys())
def test_removing_the_mark_from_the_vault_takes_the_audit_key_with_it(vault: Vault, home: Path, sql: str) -> None:
    a_proxy_ran_and_stopped(AuditLog.for_vault(vault), 3)
    with raw(home) as conn:
        conn.executescript(sql)
    with pytest.raises(VaultCorrupted, match="high-water mark are missing .* restore vault.db"):
        AuditLog.for_vault(vault)


def test_a_vault_that_kept_the_audit_key_alone_is_upgraded_in_place(vault: Vault, home: Path) -> None:
    key = os.urandom(32)
    put_record(home, "audit", "legacy", {"key": vault.seal(key, audit_anchor.KEY_CONTEXT), "head": None})
    first = seal(key, None, {"id": "a", "source": "mcp"})
    (home / "audit.jsonl").write_bytes(encode(first))
    anchor = VaultAnchor(vault, lock_file(home))
    anchor.advance(Link(1, first["mac"]))  # the checkpoint as the version before wrote it
    assert anchor.key == key
    upgraded = AuditLog.for_vault(vault)
    assert fields_of(home, "audit", "legacy") == {"key": None, "head": None}  # the key lives only with the mark
    assert mark(vault, home) is None and upgraded.verify().ok
    write(upgraded, 2)
    report = upgraded.verify()
    assert report.ok and report.count == 3, report.summary()
    assert mark(vault, home) == Link(2, json.loads((home / "audit.jsonl").read_bytes().splitlines()[1])["mac"])


@pytest.mark.usefixtures("no_timed_marks")
def test_the_vault_is_written_once_for_many_records(
    audit: AuditLog, vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = []
    atomic = vault.store.atomic
    monkeypatch.setattr(vault.store, "atomic", lambda: batches.append(1) or atomic())
    [(before,)] = query(home, "SELECT coalesce(max(seq), 0) FROM streams")
    write(audit, 200)
    assert len(batches) == 1  # one write batch: the first record raised the mark
    assert query(home, "SELECT coalesce(max(seq), 0) FROM streams") == [(before + 1,)]
    assert mark_seq(vault, home) == 1
    audit.close()
    assert mark_seq(vault, home) == 200


@pytest.mark.usefixtures("no_timed_marks")
def test_the_mark_follows_the_log_every_so_many_records(
    audit: AuditLog, vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "MARK_EVERY", 4)
    write(audit, 10)
    assert mark_seq(vault, home) == 9  # raised at records 1, 5 and 9


@pytest.mark.usefixtures("no_timed_marks")
def test_a_new_live_file_raises_the_mark(vault: Vault, home: Path) -> None:
    audit = AuditLog.for_vault(vault, max_bytes=700)
    write(audit, 12)
    first_of_live = json.loads((home / "audit.jsonl").read_bytes().splitlines()[0])
    assert mark(vault, home) == Link(first_of_live["seq"], first_of_live["mac"])


@pytest.mark.usefixtures("no_timed_marks")
def test_the_mark_is_raised_only_after_the_records_it_vouches_for_are_synced(
    audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_raise = os.fsync, VaultAnchor.raise_mark

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def raise_mark(self: VaultAnchor, link: Link) -> Link:
        events.append("mark")
        return real_raise(self, link)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(VaultAnchor, "raise_mark", raise_mark)
    write(audit, 3)
    assert events[-1] == "mark" and events.count("mark") == 1
    assert events[:-1].count("fsync") >= 2  # the live file and the lock file (and the folder of a new file)


MARK_DUE = [
    ("first record of the process", 7, 0, None, False, True),
    ("a new live file", 7, 6, 0.5, True, True),
    ("soon after the last raise", 7, 6, 0.5, False, False),
    ("MARK_EVERY records on", 1006, 6, 0.5, False, True),
    ("MARK_SECONDS later", 7, 6, 10.0, False, True),
    ("nothing new since, however long", 6, 6, 99.0, False, False),
]


@pytest.mark.parametrize(("written", "marked", "since", "new_file", "due"), [m[1:] for m in MARK_DUE],
                         ids=[m[0] for m in MARK_DUE])  # fmt: skip
def test_when_the_mark_is_due(written: int, marked: int, since: float | None, new_file: bool, due: bool) -> None:
    assert mark_due(written, marked, since, new_file) is due


A, B, C = Link(3, "a" * 64), Link(5, "b" * 64), Link(5, "c" * 64)
CUT_BELOW = [
    ("nothing known yet", A, None, False),
    ("ends at the mark", B, B, False),
    ("ends above the mark", B, A, False),
    ("ends below the mark", A, B, True),
    ("log and checkpoint gone", None, A, True),
    ("another record at the mark", C, B, True),
]


@pytest.mark.parametrize(("end", "high", "cut"), [c[1:] for c in CUT_BELOW], ids=[c[0] for c in CUT_BELOW])
def test_when_the_chain_was_cut_below_what_existed(end: Link | None, high: Link | None, cut: bool) -> None:
    assert cut_below(end, high) is cut


PENDING = [
    ("nothing written", None, None, None, None),
    ("whole log", B, B, A, None),
    ("wiped", None, None, B, Loss(1, 5, B)),
    ("cut, checkpoint kept", A, B, None, Loss(4, 5, B)),
    ("cut, checkpoint rolled back", Link(1, "d" * 64), A, B, Loss(2, 5, B)),
]


@pytest.mark.parametrize(("kept", "checkpoint", "high", "loss"), [p[1:] for p in PENDING], ids=[p[0] for p in PENDING])
def test_what_an_acknowledgement_would_record(
    kept: Link | None, checkpoint: Link | None, high: Link | None, loss: Loss | None
) -> None:
    assert pending_loss(kept, checkpoint, high) == loss
