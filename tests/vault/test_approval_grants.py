"""Live approve-for-N-minutes grants can be listed and ended early (review 6, L4), over the vault's
Store (in memory and SQLite), with the revocation audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.approvals import Approvals, revoke_and_record
from clavis_mcp.vault.errors import ApprovalError

NOW = 1_800_000_000.0


def granted(queue: Approvals, method: str, minutes: int, agent: str = "ci-bot") -> str:
    held = queue.hold(service="github", agent=agent, method=method, host="api.github.com",
                      url="https://api.github.com/repos", preview="", timeout=120, now=NOW)  # fmt: skip
    queue.decide(held.id, approve=True, by="ui", minutes=minutes, now=NOW + 1)
    return held.id


def test_live_grants_are_listed_soonest_to_end_first_and_spent_ones_are_not(queue: Approvals) -> None:
    long_one, short_one = granted(queue, "DELETE", 30), granted(queue, "POST", 5, agent="other")
    once = queue.hold(service="github", agent="ci-bot", method="PUT", host="api.github.com", url="https://x/",
                      preview="", timeout=120, now=NOW)  # fmt: skip
    queue.decide(once.id, approve=True, by="ui", now=NOW + 1)  # approved once: no grant
    listed = queue.grants(now=NOW + 60)
    assert [(g.held_id, g.agent, g.service, g.method, g.host) for g in listed] == [
        (short_one, "other", "github", "POST", "api.github.com"),
        (long_one, "ci-bot", "github", "DELETE", "api.github.com"),
    ]
    assert listed[0].until == NOW + 1 + 5 * 60 and listed[0].granted_by == "ui"
    assert [g.held_id for g in queue.grants(now=NOW + 10 * 60)] == [long_one]


def test_a_revoked_grant_lets_nothing_through_any_more(queue: Approvals) -> None:
    held_id = granted(queue, "DELETE", 30)
    assert queue.granted("github", "ci-bot", "DELETE", "api.github.com", now=NOW + 2) is not None
    revoked = queue.revoke_grant(held_id, now=NOW + 3)
    assert (revoked.held_id, revoked.method) == (held_id, "DELETE")
    assert queue.granted("github", "ci-bot", "DELETE", "api.github.com", now=NOW + 4) is None
    assert queue.grants(now=NOW + 4) == []
    with pytest.raises(ApprovalError, match=f"no live grant from request '{held_id}'"):
        queue.revoke_grant(held_id, now=NOW + 5)


def test_a_spent_or_unknown_grant_cannot_be_revoked(queue: Approvals) -> None:
    held_id = granted(queue, "POST", 1)
    with pytest.raises(ApprovalError, match="no live grant"):
        queue.revoke_grant(held_id, now=NOW + 120)
    with pytest.raises(ApprovalError, match="no live grant"):
        queue.revoke_grant("00000000", now=NOW + 2)


def test_a_revocation_is_audited_with_who_revoked(tmp_path: Path) -> None:
    vault = Vault.create(tmp_path / "home")
    audit = AuditLog.for_vault(vault)
    queue = Approvals(vault.store)
    held = queue.hold(service="github", agent="ci-bot", method="DELETE", host="api.github.com",
                      url="https://api.github.com/x", preview="", timeout=120)  # fmt: skip
    queue.decide(held.id, approve=True, by="ui", minutes=5)
    revoke_and_record(queue, audit, held.id, by="cli")
    (record,) = [r for r in audit.records() if r.get("action") == "grant-revoke"]
    assert (record["source"], record["service"], record["method"], record["host"], record["decision"]) == (
        "cli", "github", "DELETE", "api.github.com", "revoked"
    )  # fmt: skip
    assert held.id in str(record["reason"])
    vault.close()
