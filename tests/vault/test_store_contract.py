"""The storage protocol's contract, run against every implementation of Store.

A new backend (the team server's, say) adds itself to ``STORES`` and passes this file; then the
vault and its repositories work over it unchanged. ``pair`` gives two handles on one storage (two
processes on one vault file; one object for the in-memory store).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clavis_mcp.vault.errors import StoreConflict
from clavis_mcp.vault.storage.memory import MemoryStore
from clavis_mcp.vault.storage.protocol import ANY, Store
from clavis_mcp.vault.storage.sqlite import SQLiteStore

STORES = ["memory", "sqlite"]


@pytest.fixture(params=STORES)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    if request.param == "memory":
        memory = MemoryStore()
        yield memory, memory
        return
    path = tmp_path / "vault.db"
    first = SQLiteStore.create(path, {"vault_id": "contract"})
    second = SQLiteStore.open(path)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


@pytest.fixture
def store(pair: tuple[Store, Store]) -> Store:
    return pair[0]


def with_service(store: Store, name: str = "svc") -> None:
    with store.atomic() as batch:
        batch.put_service(name, '{"d": 1}')


# -- services and secrets ----------------------------------------------------------------------


def test_services_are_created_read_replaced_and_deleted(store: Store) -> None:
    with store.atomic() as batch:
        batch.put_service("b", "B1")
        batch.put_service("a", "A1")
    with store.atomic() as batch:
        batch.put_service("b", "B2")
    with store.read() as batch:
        assert batch.services() == {"a": "A1", "b": "B2"} and list(batch.services()) == ["a", "b"]
        assert batch.service("b") == "B2" and batch.service("c") is None
    with store.atomic() as batch:
        assert batch.delete_service("a") is True
        assert batch.delete_service("a") is False
    with store.read() as batch:
        assert batch.services() == {"b": "B2"}


def test_a_service_holds_several_named_secret_fields(store: Store) -> None:
    with_service(store)
    with store.atomic() as batch:
        batch.put_secret("svc", "credential", b"\x00sealed-1")
        batch.put_secret("svc", "client_secret", b"sealed-2")
        batch.put_secret("svc", "credential", b"sealed-3")
        batch.put_service("svc", '{"d": 2}')  # replacing the definition keeps the secrets
    with store.read() as batch:
        assert batch.secret("svc", "credential") == b"sealed-3"
        assert batch.secret("svc", "client_secret") == b"sealed-2"
        assert batch.secret("svc", "other") is None
        assert batch.secrets("credential") == {"svc": b"sealed-3"}
        assert batch.secrets("other") == {}
    with store.atomic() as batch:
        assert batch.delete_secret("svc", "client_secret") is True
        assert batch.delete_secret("svc", "client_secret") is False
    with store.read() as batch:
        assert batch.secret("svc", "client_secret") is None


def test_a_secret_needs_its_service(store: Store) -> None:
    with pytest.raises(StoreConflict, match="no service 'ghost'"), store.atomic() as batch:
        batch.put_secret("ghost", "credential", b"x")
    with store.read() as batch:
        assert batch.secret("ghost", "credential") is None


def test_deleting_a_service_cascades_to_its_secrets_and_bound_records_only(store: Store) -> None:
    with_service(store, "svc")
    with_service(store, "other")
    with store.atomic() as batch:
        batch.put_secret("svc", "credential", b"s")
        batch.put_secret("other", "credential", b"o")
        batch.put("oauth", "svc", {"a": 1}, service="svc")
        batch.put("oauth", "other", {"a": 2}, service="other")
        batch.put("rate_limits", "svc", {"h": "{}"})  # not bound: stays
    with store.atomic() as batch:
        batch.delete_service("svc")
    with store.read() as batch:
        assert batch.secret("svc", "credential") is None and batch.get("oauth", "svc") is None
        assert batch.secret("other", "credential") == b"o" and batch.get("oauth", "other") is not None
        assert batch.get("rate_limits", "svc") is not None
    with_service(store, "svc")  # a new service of the same name starts empty
    with store.read() as batch:
        assert batch.secret("svc", "credential") is None and batch.get("oauth", "svc") is None


# -- records and compare-and-set ---------------------------------------------------------------


def test_records_are_versioned_from_one_and_returned_as_copies(store: Store) -> None:
    with store.atomic() as batch:
        assert batch.put("agent", "b", {"n": 1}) == 1
        assert batch.put("agent", "b", {"n": 2}) == 2
        assert batch.put("agent", "a", {"n": 3}) == 1
        batch.put("budget", "a", {"n": 4})
    with store.read() as batch:
        found = batch.get("agent", "b")
        assert found is not None and (found.kind, found.key, found.fields, found.version) == ("agent", "b", {"n": 2}, 2)
        found.fields["n"] = 99
        assert [(r.key, r.fields) for r in batch.records("agent")] == [("a", {"n": 3}), ("b", {"n": 2})]
        assert batch.get("agent", "zzz") is None and batch.records("nothing") == []


def test_record_values_keep_their_types(store: Store) -> None:
    fields = {"none": None, "yes": True, "no": False, "int": 7, "big": 2**53 + 1, "float": 1.5,
              "str": "tëxt {\"$b64\": 1}", "bytes": b"\x00\xffsealed", "empty": b""}  # fmt: skip
    with store.atomic() as batch:
        batch.put("k", "x", fields)
    with store.read() as batch:
        found = batch.get("k", "x")
    assert found is not None and found.fields == fields
    assert {k: type(v) for k, v in found.fields.items()} == {k: type(v) for k, v in fields.items()}


def test_a_record_value_of_another_type_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="'nested'"), store.atomic() as batch:
        batch.put("k", "x", {"nested": [1, 2]})  # type: ignore[dict-item]


def test_compare_and_set_conflicts(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    with mine.atomic() as batch:
        assert batch.put("lease", "svc", {"owner": "me"}, expect=0) == 1
    with pytest.raises(StoreConflict, match="version 1, not 0"), theirs.atomic() as batch:
        batch.put("lease", "svc", {"owner": "them"}, expect=0)  # create-only, but it exists
    with theirs.read() as batch:
        seen = batch.get("lease", "svc")
    assert seen is not None
    with mine.atomic() as batch:
        batch.put("lease", "svc", {"owner": "me", "until": 5}, expect=seen.version)
    with pytest.raises(StoreConflict), theirs.atomic() as batch:  # what they read is stale
        batch.put("lease", "svc", {"owner": "them"}, expect=seen.version)
    with pytest.raises(StoreConflict), theirs.atomic() as batch:
        batch.delete("lease", "svc", expect=seen.version)
    with mine.read() as batch:
        found = batch.get("lease", "svc")
    assert found is not None and found.fields == {"owner": "me", "until": 5} and found.version == 2
    with theirs.atomic() as batch:
        assert batch.delete("lease", "svc", expect=2) is True
        assert batch.delete("lease", "svc", expect=0) is False
        assert batch.put("lease", "svc", {"owner": "them"}, expect=ANY) == 1


def test_a_record_bound_to_a_missing_service_is_refused(store: Store) -> None:
    with pytest.raises(StoreConflict, match="no service 'ghost'"), store.atomic() as batch:
        batch.put("budget", "ghost", {"n": 1}, service="ghost")
    with store.read() as batch:
        assert batch.get("budget", "ghost") is None


def test_a_counter_taken_by_many_threads_loses_no_increment(pair: tuple[Store, Store]) -> None:
    def take(store: Store) -> None:
        for _ in range(25):
            with store.atomic() as batch:
                found = batch.get("usage", "svc")
                count = found.fields["count"] if found else 0
                assert isinstance(count, int)
                batch.put("usage", "svc", {"count": count + 1}, expect=found.version if found else 0, quiet=True)

    threads = [threading.Thread(target=take, args=(pair[i % 2],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pair[0].read() as batch:
        found = batch.get("usage", "svc")
    assert found is not None and found.fields == {"count": 100} and found.version == 100


# -- the change counter ------------------------------------------------------------------------


def test_the_change_counter_moves_on_services_secrets_and_loud_records_only(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    steps = []
    with_service(theirs)
    steps.append(("service", mine.changes()))
    with theirs.atomic() as batch:
        batch.put_secret("svc", "credential", b"x")
    steps.append(("secret", mine.changes()))
    with theirs.atomic() as batch:
        batch.put("budget", "svc", {"n": 1}, service="svc")
    steps.append(("record", mine.changes()))
    with theirs.atomic() as batch:
        batch.delete("budget", "svc")
    steps.append(("record deleted", mine.changes()))
    moved = [name for (name, after), (_, before) in zip(steps[1:], steps, strict=False) if after > before]
    assert moved == ["secret", "record", "record deleted"]
    before = mine.changes()
    with theirs.atomic() as batch:
        batch.put("rate_limits", "svc", {"h": "{}"}, quiet=True)
        batch.delete("rate_limits", "svc", quiet=True)
        batch.append("audit-anchor", b"mark", expect=0)
        batch.set_meta({"note": "x"})
    assert mine.changes() == before
    with theirs.atomic() as batch:
        batch.delete_service("svc")
    assert mine.changes() > before


def changed_since(store: Store, since: int) -> tuple[int, set[str] | None]:
    with store.read() as batch:
        return batch.changed_services(since)


def test_the_change_feed_names_each_service_changed_since_a_position(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    assert changed_since(mine, 0) == (0, set())
    with_service(theirs, "a")
    with_service(theirs, "b")
    start, changed = changed_since(mine, 0)
    assert changed == {"a", "b"}
    with theirs.atomic() as batch:
        batch.put("budget", "a", {"n": 1}, service="a")  # a record is no change to the service
        batch.put_secret("b", "credential", b"x")
    position, changed = changed_since(mine, start)
    assert changed == {"b"} and position > start
    with theirs.atomic() as batch:
        batch.put_service("c", "C")
        batch.put_service("a", "A2")
    after_writes, changed = changed_since(mine, position)
    assert changed == {"a", "c"}
    with theirs.atomic() as batch:
        batch.delete_service("c")
        batch.delete_secret("b", "credential")
    last, changed = changed_since(mine, after_writes)
    assert changed == {"b", "c"}
    assert changed_since(mine, last) == (last, set())


def test_a_change_rolled_back_is_not_in_the_feed(store: Store) -> None:
    with_service(store, "a")
    position, _ = changed_since(store, 0)
    with pytest.raises(RuntimeError), store.atomic() as batch:
        batch.put_service("b", "B")
        raise RuntimeError("abort")
    assert changed_since(store, position) == (position, set())


def test_a_position_the_feed_no_longer_reaches_reads_everything_again(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    with_service(theirs, "a")
    first, _ = changed_since(mine, 0)
    with theirs.atomic() as batch:
        for i in range(1100):  # more changes than a store keeps: both keep 1024
            batch.put_service(f"s{i % 3}", str(i))
    position, changed = changed_since(mine, first)
    assert changed is None and position > first
    assert changed_since(mine, position + 1)[1] is None  # a position from the future: another store's
    assert changed_since(mine, position) == (position, set())


# -- atomic batches ----------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_a_batch_is_all_or_nothing(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    with_service(mine, "keep")
    before = theirs.changes()
    with pytest.raises(Boom), mine.atomic() as batch:
        batch.put_service("new", "N")
        batch.put_secret("new", "credential", b"n")
        batch.put("agent", "ci", {"token": b"t"})
        batch.delete_service("keep")
        batch.append("audit-anchor", b"m", expect=0)
        batch.set_meta({"half": "written"})
        raise Boom
    with theirs.read() as batch:
        assert batch.services() == {"keep": '{"d": 1}'}
        assert batch.get("agent", "ci") is None and batch.tail("audit-anchor") is None
        assert "half" not in batch.meta()
    assert theirs.changes() == before


def test_a_lost_compare_and_set_rolls_back_the_whole_batch(store: Store) -> None:
    with store.atomic() as batch:
        batch.put("lease", "svc", {"n": 1})
    with pytest.raises(StoreConflict), store.atomic() as batch:
        batch.put("agent", "ci", {"n": 1})
        batch.put("lease", "svc", {"n": 2}, expect=0)
    with store.read() as batch:
        assert batch.get("agent", "ci") is None


def test_a_nested_batch_joins_the_outer_one(store: Store) -> None:
    with pytest.raises(Boom), store.atomic() as outer:
        outer.put("agent", "a", {"n": 1})
        with store.atomic() as inner:
            inner.put("agent", "b", {"n": 2})
            assert inner.get("agent", "a") is not None
        with store.read() as view:
            assert view.get("agent", "b") is not None
        raise Boom
    with store.read() as batch:
        assert batch.records("agent") == []


def test_a_read_view_refuses_writes(store: Store) -> None:
    with store.read() as batch:
        with pytest.raises(RuntimeError, match="read view"):
            batch.put("agent", "a", {"n": 1})
        with pytest.raises(RuntimeError, match="read view"), store.atomic():
            pass
    with store.read() as batch:
        assert batch.records("agent") == []


def test_a_read_view_sees_one_moment(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    with_service(mine, "a")
    wrote = threading.Event()

    def writer() -> None:
        with theirs.atomic() as batch:
            batch.put_service("b", "B")
        wrote.set()

    thread = threading.Thread(target=writer)
    with mine.read() as batch:
        first = batch.services()
        thread.start()
        wrote.wait(0.5)  # done (SQLite: readers do not block the writer) or waiting for this view
        assert batch.services() == first == {"a": '{"d": 1}'}
    thread.join()
    with mine.read() as batch:
        assert set(batch.services()) == {"a", "b"}


# -- streams and header ------------------------------------------------------------------------


def test_a_stream_appends_with_compare_and_set_on_its_tail(pair: tuple[Store, Store]) -> None:
    mine, theirs = pair
    with mine.read() as batch:
        assert batch.tail("audit-anchor") is None
    with mine.atomic() as batch:
        assert batch.append("audit-anchor", b"one", expect=0) == 1
    with pytest.raises(StoreConflict), theirs.atomic() as batch:
        batch.append("audit-anchor", b"stale", expect=0)
    with theirs.atomic() as batch:
        for n in range(2, 40):
            assert batch.append("audit-anchor", f"e{n}".encode(), expect=n - 1) == n
    with mine.read() as batch:
        assert batch.tail("audit-anchor") == (39, b"e39") and batch.tail("other") is None


def test_the_header_is_kept(store: Store) -> None:
    with store.atomic() as batch:
        batch.set_meta({"key_store": "keyfile", "wrapped_key": "00"})
        batch.set_meta({"wrapped_key": "ff"})
    with store.read() as batch:
        meta = batch.meta()
    assert meta["key_store"] == "keyfile" and meta["wrapped_key"] == "ff"


def test_the_store_checks_itself(store: Store) -> None:
    assert store.check() == "ok"
