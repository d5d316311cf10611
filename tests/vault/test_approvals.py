"""The shared queue of held requests, over the vault's Store (in memory and SQLite): hold, decide
once (also two processes at once), time out once, grants for a while."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault
from clavis_mcp.vault.approvals import (
    APPROVED,
    DENIED,
    PENDING,
    TIMED_OUT,
    TIMEOUT_ENV,
    Approvals,
    approval_hold,
    needs_for,
)
from clavis_mcp.vault.errors import ApprovalError
from clavis_mcp.vault.storage.sqlite import SQLiteStore

NOW = 1_800_000_000.0


def hold(queue: Approvals, method: str = "POST", timeout: float = 120.0, now: float = NOW) -> str:
    held = queue.hold(service="github", agent="ci-bot", method=method, host="api.github.com",
                      url="https://api.github.com/repos", preview="{}", timeout=timeout, now=now)  # fmt: skip
    return held.id


def test_a_held_request_is_pending_until_decided_and_then_decided_once(queue: Approvals) -> None:
    held = hold(queue)
    assert [h.id for h in queue.pending(NOW + 1)] == [held]
    decided = queue.decide(held, approve=True, by="ui", now=NOW + 2)
    assert (decided.state, decided.decided_by) == (APPROVED, "ui")
    assert queue.pending(NOW + 3) == []
    with pytest.raises(ApprovalError, match=f"request {held} was already approved by ui"):
        queue.decide(held, approve=False, by="cli", now=NOW + 4)


def test_the_queue_is_records_of_the_vaults_store_and_moves_no_change_counter(tmp_path: Path) -> None:
    """Held requests live in the store (so a team store shares them), not in a file of their own,
    and holding one does not make every proxy rebuild its snapshot."""
    vault = Vault.in_memory(tmp_path)
    before = vault.store.changes()
    queue = Approvals(vault.store)
    held = hold(queue)
    queue.decide(held, approve=True, by="ui", minutes=5, now=NOW + 1)
    with vault.store.read() as batch:
        assert [r.key for r in batch.records("approval")] == [held]
        assert len(batch.records("approval-grant")) == 1
    assert vault.store.changes() == before
    assert not (tmp_path / "approvals.sqlite").exists()


def test_another_handle_on_the_same_store_sees_the_same_queue(tmp_path: Path) -> None:
    SQLiteStore.create(tmp_path / "vault.db", {"vault_id": "test"}).close()
    queue, other = Approvals(tmp_path), Approvals(tmp_path)
    held = hold(queue)
    other.decide(held, approve=False, by="cli", now=NOW + 1)
    assert queue.get(held).state == DENIED
    queue.close()
    other.close()


def test_threads_racing_to_decide_one_request_make_one_decision(queue: Approvals) -> None:
    held = hold(queue, now=NOW * 2)
    results: list[str] = []
    start = threading.Barrier(8)

    def decide(n: int) -> None:
        start.wait()
        try:
            queue.decide(held, approve=n % 2 == 0, by=f"person-{n}", now=NOW * 2 + 1)
            results.append(f"won:{n}")
        except ApprovalError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [r for r in results if r.startswith("won:")]
    assert len(won) == 1, results
    final = queue.get(held)
    assert final.decided_by == f"person-{won[0][4:]}"
    assert all(f"was already {final.state} by {final.decided_by}" in r for r in results if r not in won)


DECIDER = """
import sys, time
from pathlib import Path
from clavis_mcp.vault.approvals import Approvals
from clavis_mcp.vault.errors import ApprovalError
home, held, who, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
queue = Approvals(home)
while not go.exists():
    time.sleep(0.001)
try:
    print("won", queue.decide(held, approve=who == "a", by=who, now=float(sys.argv[5])).state)
except ApprovalError as exc:
    print("lost", exc)
"""


@pytest.mark.e2e
def test_two_processes_deciding_at_once_make_one_decision(tmp_path: Path) -> None:
    SQLiteStore.create(tmp_path / "vault.db", {"vault_id": "test"}).close()
    queue = Approvals(tmp_path)
    for round_ in range(3):
        held = hold(queue, now=NOW)
        go = tmp_path / f"go-{round_}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", DECIDER, str(tmp_path), held, who, str(go), str(NOW + 1)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for who in ("a", "b")
        ]
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        lines = sorted(out.strip() for out, _ in outs)
        final = queue.get(held)
        assert [line.split()[0] for line in lines] == ["lost", "won"], lines
        assert f"was already {final.state} by {final.decided_by}" in lines[0]
        assert final.state == (APPROVED if final.decided_by == "a" else DENIED)
    queue.close()


def test_the_timeout_and_a_late_decision_race_for_one_record(queue: Approvals) -> None:
    late = hold(queue, timeout=10)
    with pytest.raises(ApprovalError, match="waited too long"):
        queue.decide(late, approve=True, by="ui", now=NOW + 10)
    assert queue.expire(late, now=NOW + 10).state == TIMED_OUT
    with pytest.raises(ApprovalError, match=f"request {late} was already timed out"):
        queue.decide(late, approve=True, by="ui", now=NOW + 5)  # even with a clock that lags
    won = hold(queue, timeout=10)
    queue.decide(won, approve=True, by="ui", now=NOW + 5)
    assert queue.expire(won, now=NOW + 10).state == APPROVED  # the decision that came first stands


def test_an_unknown_id_is_a_clear_error(queue: Approvals) -> None:
    with pytest.raises(ApprovalError, match="`clavis-mcp approvals` lists the waiting ones"):
        queue.decide("nope", approve=True, by="cli")


def test_approving_for_minutes_lets_like_requests_through_until_then(queue: Approvals) -> None:
    held = hold(queue)
    queue.decide(held, approve=True, by="ui", minutes=10, now=NOW)
    grant = queue.granted("github", "ci-bot", "post", "api.github.com", now=NOW + 599)
    assert grant is not None and (grant.granted_by, grant.held_id) == ("ui", held)
    assert queue.granted("github", "ci-bot", "POST", "api.github.com", now=NOW + 600) is None
    assert queue.granted("github", "other-agent", "POST", "api.github.com", now=NOW + 1) is None
    assert queue.granted("github", "ci-bot", "DELETE", "api.github.com", now=NOW + 1) is None
    once = hold(queue)
    queue.decide(once, approve=True, by="ui", now=NOW)
    assert queue.get(once).state == APPROVED and queue.get(held).state == APPROVED


def test_old_decisions_and_spent_grants_are_pruned_when_a_request_is_held(queue: Approvals) -> None:
    old = hold(queue, timeout=10)
    queue.decide(old, approve=True, by="ui", minutes=1, now=NOW)
    hold(queue, now=NOW + 2 * 3600)
    with pytest.raises(ApprovalError, match="no held request"):
        queue.get(old)
    assert queue.granted("github", "ci-bot", "POST", "api.github.com", now=NOW + 1) is None


@pytest.mark.parametrize(
    ("mode", "get", "post"), [("none", False, False), ("writes", False, True), ("all", True, True)], ids=str
)
def test_the_policy_modes(mode: str, get: bool, post: bool) -> None:
    needs = needs_for(mode)
    assert (needs("s", "a", "GET"), needs("s", "a", "post")) == (get, post)
    with pytest.raises(ValueError, match="use none, writes or all"):
        needs_for("some")
    assert PENDING == "pending"


@pytest.mark.parametrize(("value", "timeout"), [("", 120.0), ("5", 5.0), (" 0.5 ", 0.5)], ids=["default", "5", "half"])
def test_the_timeout_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, timeout: float
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, value)
    hold = approval_hold(tmp_path)
    assert (hold.timeout, hold.needs, hold.home) == (timeout, None, tmp_path)


@pytest.mark.parametrize("value", ["soon", "0", "-3", "nan", "1e9"])
def test_a_bad_timeout_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(ApprovalError, match=f"{TIMEOUT_ENV}=.*give the seconds a person has to answer"):
        approval_hold(tmp_path)


def test_a_home_without_a_vault_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no clavis-mcp home at .*clavis-mcp init"):
        Approvals(tmp_path / "nowhere")
