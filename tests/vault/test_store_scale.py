"""Service changes cost what changed, not what the vault holds (issue 18.4): adding a service
reads no other definition, and listings and snapshots reuse every unchanged parse and decryption.
Identity (``is``) shows the reuse; a change is still seen at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import DuplicateService, UnknownService, Vault, validate_secret
from clavis_mcp.vault.storage.sqlite import SQLiteBatch
from tests.conftest import make_service

A, B, C = "sk-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-bbbbbbbbbbbbbbbbbbbbbbbb", "sk-cccccccccccccccccccccccc"


def test_adding_or_removing_a_service_reads_no_other_definition(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    vault.add_service(make_service("gone", "gone.example"), validate_secret(A))
    listed: list[int] = []
    original = SQLiteBatch.services

    def counting(self: SQLiteBatch) -> dict[str, str]:
        listed.append(1)
        return original(self)

    monkeypatch.setattr(SQLiteBatch, "services", counting)
    vault.add_service(make_service("b", "b.example"), validate_secret(B))
    vault.remove_service("gone")
    assert listed == []
    with pytest.raises(UnknownService, match="'gone'"):  # the error names the services there are
        vault.remove_service("gone")
    with pytest.raises(DuplicateService):
        vault.add_service(make_service("a", "other.example"), validate_secret(C))
    with pytest.raises(DuplicateService):
        vault.add_services([(make_service("c", "c.example"), validate_secret(C))] * 2)
    monkeypatch.undo()
    assert [s.name for s in vault.list_services()] == ["a", "b"]


def test_a_snapshot_after_a_change_reuses_everything_unchanged(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    vault.add_service(make_service("b", "b.example"), validate_secret(B))
    first = vault.snapshot()
    vault.add_service(make_service("c", "c.example"), validate_secret(C))
    second = vault.snapshot()
    assert second.service("a") is first.service("a")
    assert second.secrets["a"] is first.secrets["a"]
    assert second.secrets["c"].reveal() == C

    vault.rotate_secret("b", validate_secret(C))
    third = vault.snapshot()
    assert third.secrets["b"].reveal() == C  # a rotation is seen at once
    assert third.service("b").rotated_at is not None
    assert third.secrets["a"] is first.secrets["a"]

    vault.remove_service("a")
    vault.add_service(make_service("a", "a2.example"), validate_secret(B))
    fourth = vault.snapshot()
    assert fourth.secrets["a"].reveal() == B
    assert [str(h) for h in fourth.service("a").hosts] == ["a2.example"]


def test_listing_reuses_unchanged_services_and_sees_an_update(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    vault.add_service(make_service("b", "b.example"), validate_secret(B))
    before = {s.name: s for s in vault.list_services()}
    vault.update_service(make_service("b", "b.example", methods=("GET",)))
    after = {s.name: s for s in vault.list_services()}
    assert after["a"] is before["a"]
    assert after["b"].methods == ("GET",)


def test_a_change_by_another_connection_is_seen_with_the_cache_warm(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    assert vault.snapshot().secrets["a"].reveal() == A
    with Vault.open(home) as other:
        other.rotate_secret("a", validate_secret(B))
    assert vault.snapshot().secrets["a"].reveal() == B


def test_a_listing_reads_again_only_the_definitions_changed_since(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.add_service(make_service("a", "a.example"), validate_secret(A))
    vault.add_service(make_service("c", "c.example"), validate_secret(C))
    assert [s.name for s in vault.list_services()] == ["a", "c"]
    read: list[str] = []
    every, one = SQLiteBatch.services, SQLiteBatch.service

    def counting_every(self: SQLiteBatch) -> dict[str, str]:
        read.append("*")
        return every(self)

    def counting_one(self: SQLiteBatch, name: str) -> str | None:
        read.append(name)
        return one(self, name)

    monkeypatch.setattr(SQLiteBatch, "services", counting_every)
    monkeypatch.setattr(SQLiteBatch, "service", counting_one)
    assert [s.name for s in vault.list_services()] == ["a", "c"]
    assert read == []
    with Vault.open(home) as other:  # a change by another process is seen at the next listing
        other.add_service(make_service("b", "b.example"), validate_secret(B))
        other.update_service(make_service("a", "a.example", methods=("GET",)))
        other.remove_service("c")
    read.clear()
    listing = vault.list_services()
    assert [s.name for s in listing] == ["a", "b"] and listing[0].methods == ("GET",)
    assert sorted(read) == ["a", "b", "c"]
