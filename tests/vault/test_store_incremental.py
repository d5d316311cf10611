"""A snapshot after a change costs what the change costs (issue 18.4): it reads only the services
the store's change feed names, and its indexes answer exactly as a snapshot built from scratch."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import Snapshot, Vault, validate_secret
from clavis_mcp.vault.storage.sqlite import SQLiteBatch
from tests.conftest import make_service

A, B, C = "sk-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-bbbbbbbbbbbbbbbbbbbbbbbb", "sk-cccccccccccccccccccccccc"
DESTINATIONS = [
    ("a.example", 443, "https"),
    ("b.example", 443, "https"),
    ("shared.example", 443, "https"),
    ("x.wild.example", 443, "https"),
    ("wild.example", 443, "https"),
    ("c.example", 8443, "https"),
    ("c.example", 443, "https"),
]


def owners_everywhere(snapshot: Snapshot) -> dict[tuple[str, int, str], list[str]]:
    return {d: [s.name for s in snapshot.owners(*d)] for d in DESTINATIONS}


def assert_same_as_rebuilt(snapshot: Snapshot) -> None:
    rebuilt = Snapshot(snapshot.services, snapshot.secrets)
    assert owners_everywhere(snapshot) == owners_everywhere(rebuilt)
    assert [s.name for s in snapshot.services] == sorted(s.name for s in snapshot.services)


def test_a_snapshot_after_changes_answers_as_one_built_from_scratch(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example", "shared.example"), validate_secret(A))
    vault.add_service(make_service("m", "*.wild.example", "shared.example"), validate_secret(B))
    first = vault.snapshot()
    assert owners_everywhere(first)[("shared.example", 443, "https")] == ["a", "m"]
    with Vault.open(home) as other:  # another process's changes, read from the feed
        other.add_service(make_service("b", "b.example", "shared.example"), validate_secret(C))
    snapshot = vault.snapshot()
    assert_same_as_rebuilt(snapshot)
    assert [s.name for s in snapshot.owners("shared.example", 443, "https")] == ["a", "b", "m"]
    assert snapshot.secrets["b"].reveal() == C and snapshot.service("a") is first.service("a")

    vault.update_service(make_service("m", "c.example:8443", "c.example"))  # moved off its hosts
    vault.remove_service("a")
    snapshot = vault.snapshot()
    assert_same_as_rebuilt(snapshot)
    assert owners_everywhere(snapshot) == {
        ("a.example", 443, "https"): [],
        ("b.example", 443, "https"): ["b"],
        ("shared.example", 443, "https"): ["b"],
        ("x.wild.example", 443, "https"): [],
        ("wild.example", 443, "https"): [],
        ("c.example", 8443, "https"): ["m"],
        ("c.example", 443, "https"): ["m"],
    }
    assert set(snapshot.secrets) == {"b", "m"}
    with pytest.raises(Exception, match="'a'"):
        snapshot.service("a")

    vault.add_service(make_service("a", "*.wild.example"), validate_secret(C))  # back, elsewhere
    vault.rotate_secret("m", validate_secret(A))
    snapshot = vault.snapshot()
    assert_same_as_rebuilt(snapshot)
    assert snapshot.secrets["a"].reveal() == C and snapshot.secrets["m"].reveal() == A
    assert [s.name for s in snapshot.owners("x.wild.example", 443, "https")] == ["a"]

    vault.remove_service("m")  # two rules on one host
    snapshot = vault.snapshot()
    assert_same_as_rebuilt(snapshot)
    assert snapshot.owners("c.example", 443, "https") == () and set(snapshot.secrets) == {"a", "b"}


def test_a_snapshot_after_a_change_reads_only_the_changed_service(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        vault.add_service(make_service(name, f"{name}.example"), validate_secret(A))
    vault.snapshot()
    read: list[str] = []
    every, every_secret = SQLiteBatch.services, SQLiteBatch.secrets

    def counting_every(self: SQLiteBatch) -> dict[str, str]:
        read.append("every definition")
        return every(self)

    def counting_every_secret(self: SQLiteBatch, field: str) -> dict[str, bytes]:
        read.append("every secret")
        return every_secret(self, field)

    monkeypatch.setattr(SQLiteBatch, "services", counting_every)
    monkeypatch.setattr(SQLiteBatch, "secrets", counting_every_secret)
    with Vault.open(home) as other:
        other.rotate_secret("b", validate_secret(B))
    assert vault.snapshot().secrets["b"].reveal() == B
    assert read == []


def test_a_record_change_makes_a_new_snapshot_that_reuses_every_service(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    first = vault.snapshot()
    with vault.store.atomic() as batch:
        batch.put("budget", "a", {"max_requests": 1, "period": 60}, service="a")
    second = vault.snapshot()
    assert second is not first  # its derived views are read again
    assert second.service("a") is first.service("a") and second.secrets["a"] is first.secrets["a"]


def test_more_changes_than_the_feed_keeps_read_everything_again(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    vault.snapshot()
    with Vault.open(home) as other:
        for i in range(600):  # two feed entries each: over the 1,024 kept
            other.add_service(make_service(f"n{i:03}", f"n{i}.example"), validate_secret(B))
        other.remove_service("a")
    snapshot = vault.snapshot()
    assert len(snapshot.services) == 600 and "a" not in snapshot.secrets
    assert [s.name for s in snapshot.owners("n599.example", 443, "https")] == ["n599"]


def test_a_vault_made_before_the_feed_gets_it_on_open_and_keeps_working(home: Path) -> None:
    with Vault.create(home) as vault:
        vault.add_service(make_service("a", "a.example"), validate_secret(A))
    with closing(sqlite3.connect(home / "vault.db")) as conn, conn:  # as format 3 was before the feed
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'feed_%'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DELETE FROM streams WHERE stream = 'service-changes'")
    with Vault.open(home) as vault, Vault.open(home) as other:
        assert [s.name for s in vault.snapshot().services] == ["a"]
        other.add_service(make_service("b", "b.example"), validate_secret(B))
        assert vault.snapshot().secrets["b"].reveal() == B
        assert [s.name for s in vault.list_services()] == ["a", "b"]
