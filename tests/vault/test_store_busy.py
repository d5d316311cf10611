"""Busy writers and concurrent readers on one vault file (issue 20, points 3 and 4).

- A write waits for another process's write lock (trying again, not failing), and when the lock
  stays taken past its bound it fails with a one-line VaultBusy, having written nothing.
- A snapshot reads the services and their secrets in one read transaction: a service removed
  meanwhile by another process never makes the snapshot fail or lose another service.
- The per-request writes (rate limits, budget usage) never fail the request.

The other process is a raw sqlite3 connection to the file: it holds SQLite's own locks, as a
writer of any version would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.errors import VaultBusy
from clavis_mcp.vault.keys.crypto import DataKey
from clavis_mcp.vault.limits import budget, ratelimits
from clavis_mcp.vault.storage import sqlite as sqlite_store
from tests.conftest import make_service
from tests.vault.rawdb import raw

A, B, C = "sk-busy-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-busy-bbbbbbbbbbbbbbbbbbbbbbbb", "sk-busy-cccccccccccccccccccccccc"


@contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Another process in the middle of a write transaction on ``db``."""
    import sqlite3

    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()


def test_a_write_waits_for_another_writer_and_then_goes_through(vault: Vault, home: Path) -> None:
    done = threading.Event()

    def add() -> None:
        vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
        done.set()

    with write_locked(home / "vault.db"):
        writer = threading.Thread(target=add)
        writer.start()
        assert not done.wait(0.3)  # it waits (nothing was written under the other lock)
    writer.join()
    assert done.is_set() and vault.secret("a").reveal() == A


def test_a_write_locked_out_past_its_bound_fails_with_one_clear_line(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "WRITE_WAIT", 0.2)
    with write_locked(home / "vault.db"), pytest.raises(VaultBusy) as caught:
        vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    message = str(caught.value)
    assert "\n" not in message and "stayed locked by another process's write" in message and "try again" in message
    assert vault.list_services() == []
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))  # and the vault works after
    assert [s.name for s in vault.list_services()] == ["a"]


def test_a_snapshot_is_read_in_one_transaction(vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy read the list and then each secret in its own statement: a service removed in
    between (by the CLI, say) made the whole snapshot fail, and requests to *other* services 502."""
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    opened = DataKey.open
    removed = []

    def open_and_meanwhile_remove_b(self: DataKey, blob: bytes, aad: bytes, what: str) -> bytes:
        if not removed:  # the first secret is being decrypted: another process removes b now
            with raw(home) as conn:
                conn.execute("DELETE FROM secrets WHERE service = 'b'")
                conn.execute("DELETE FROM services WHERE name = 'b'")
            removed.append(True)
        return opened(self, blob, aad, what)

    monkeypatch.setattr(DataKey, "open", open_and_meanwhile_remove_b)
    snapshot = vault.snapshot()
    assert removed and set(snapshot.secrets) == {"a", "b"}  # as of the moment the read began
    monkeypatch.setattr(DataKey, "open", opened)
    assert set(vault.snapshot().secrets) == {"a"}  # and the next one sees the removal


def test_a_snapshot_needs_no_write_lock(vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    monkeypatch.setattr(sqlite_store, "WRITE_WAIT", 0.2)
    with closing(Vault.open(home)) as proxy, write_locked(home / "vault.db"):
        assert proxy.snapshot().secrets["a"].reveal() == A


def test_recording_rate_limits_never_fails_the_request(
    vault: Vault, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    monkeypatch.setattr(sqlite_store, "WRITE_WAIT", 0.2)
    with write_locked(home / "vault.db"):
        ratelimits.record(vault, "a", {"retry-after": "30"}, 1.0)  # no exception
    assert "not recorded" in caplog.text and ratelimits.latest(vault, "a") is None
    ratelimits.record(vault, "a", {"retry-after": "30"}, 2.0)
    assert ratelimits.latest(vault, "a") == ({"retry-after": "30"}, 2.0)


def test_counting_a_request_never_fails_it(home: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = budget.UsageCounter(home)
    limit = budget.Budget(1, 3600.0)
    monkeypatch.setattr(sqlite_store, "WRITE_WAIT", 0.2)
    try:
        with write_locked(home / budget.USAGE_FILE):
            assert counter.take("a", limit, 10.0).allowed  # let through, uncounted
        assert counter.take("a", limit, 10.0).allowed
        assert not counter.take("a", limit, 10.0).allowed  # counting resumed
    finally:
        counter.close()


class _CommitFailsOnce:
    """The store's connection, whose next COMMIT fails as on a full disk."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def commit(self) -> None:
        import sqlite3

        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database or disk is full")
        self._conn.commit()  # type: ignore[attr-defined]


def test_a_failed_commit_leaves_no_transaction_open(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    store = vault.store
    assert isinstance(store, sqlite_store.SQLiteStore)
    monkeypatch.setattr(store, "_conn", _CommitFailsOnce(store._conn))
    with pytest.raises(Exception, match="disk is full"):
        vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    assert vault.list_services() == []
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))  # the next write works
    assert [s.name for s in vault.list_services()] == ["b"]
