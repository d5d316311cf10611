"""The shared queue of held requests: hold, decide once, time out once, grants for a while."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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

NOW = 1_800_000_000.0


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Approvals]:
    opened = Approvals(tmp_path)
    yield opened
    opened.close()


def hold(queue: Approvals, method: str = "POST", timeout: float = 120.0) -> str:
    held = queue.hold(service="github", agent="ci-bot", method=method, host="api.github.com",
                      url="https://api.github.com/repos", preview="{}", timeout=timeout, now=NOW)  # fmt: skip
    return held.id


def test_a_held_request_is_pending_until_decided_and_then_decided_once(queue: Approvals, tmp_path: Path) -> None:
    held = hold(queue)
    assert [h.id for h in queue.pending(NOW + 1)] == [held]
    decided = queue.decide(held, approve=True, by="ui", now=NOW + 2)
    assert (decided.state, decided.decided_by) == (APPROVED, "ui")
    assert queue.pending(NOW + 3) == []
    with pytest.raises(ApprovalError, match=f"request {held} was already approved by ui"):
        queue.decide(held, approve=False, by="cli", now=NOW + 4)
    assert (tmp_path / "approvals.sqlite").stat().st_mode & 0o777 == 0o600


def test_another_process_sees_the_same_queue(queue: Approvals, tmp_path: Path) -> None:
    held = hold(queue)
    other = Approvals(tmp_path)
    other.decide(held, approve=False, by="cli", now=NOW + 1)
    other.close()
    assert queue.get(held).state == DENIED


def test_the_timeout_and_a_late_decision_race_for_one_row(queue: Approvals) -> None:
    late = hold(queue, timeout=10)
    with pytest.raises(ApprovalError, match="waited too long"):
        queue.decide(late, approve=True, by="ui", now=NOW + 10)
    assert queue.expire(late, now=NOW + 10).state == TIMED_OUT
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
