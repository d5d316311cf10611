"""An in-memory :class:`~.protocol.Store`: the whole contract in one small class, for pure unit
tests (``Vault.in_memory``) and as the shortest example of a backend. Nothing survives the process.

A batch works on the live state under one re-entrant lock, after taking a copy of it; an
exception restores the copy, which is what makes a batch all-or-nothing.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import StoreConflict
from .protocol import ANY, Fields, Record, Value, copy_fields

KEEP_ENTRIES = 16  # the entries of a stream kept (the contract asks for at least the last)
FEED_KEPT = 1024  # the newest entries of the change feed kept


@dataclass
class _State:
    services: dict[str, str] = field(default_factory=dict)
    secrets: dict[tuple[str, str], bytes] = field(default_factory=dict)
    records: dict[tuple[str, str], Record] = field(default_factory=dict)
    streams: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    changes: int = 0
    feed: list[str] = field(default_factory=list)  # the newest changed service names
    feed_start: int = 0  # the feed's position before feed[0]


class MemoryStore:
    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._batch: MemoryBatch | None = None  # the batch open on the thread holding the lock

    @contextmanager
    def atomic(self) -> Iterator[MemoryBatch]:
        with self._lock:
            if self._batch is not None:  # nested: join the outer batch
                if not self._batch.writable:
                    raise RuntimeError("a write batch inside a read view: open the write batch first")
                yield self._batch
                return
            saved = copy.deepcopy(self._state)
            self._batch = MemoryBatch(self._state, writable=True)
            try:
                yield self._batch
            except BaseException:
                self._state.__dict__.update(saved.__dict__)
                raise
            finally:
                self._batch = None

    @contextmanager
    def read(self) -> Iterator[MemoryBatch]:
        with self._lock:
            if self._batch is not None:
                yield self._batch
                return
            self._batch = MemoryBatch(self._state, writable=False)
            try:
                yield self._batch
            finally:
                self._batch = None

    def changes(self) -> int:
        return self._state.changes

    def check(self) -> str:
        return "ok"

    def close(self) -> None:
        pass


class MemoryBatch:
    def __init__(self, state: _State, *, writable: bool) -> None:
        self._s = state
        self.writable = writable

    def _write(self, quiet: bool = False) -> None:
        if not self.writable:
            raise RuntimeError("a write inside a read view: open the batch with atomic()")
        if not quiet:
            self._s.changes += 1

    def _changed(self, service: str) -> None:
        self._write()
        feed = self._s.feed
        feed.append(service)
        if len(feed) > FEED_KEPT:
            del feed[0]
            self._s.feed_start += 1

    # -- services and secrets ------------------------------------------------------------------

    def services(self) -> dict[str, str]:
        return dict(sorted(self._s.services.items()))

    def service(self, name: str) -> str | None:
        return self._s.services.get(name)

    def put_service(self, name: str, definition: str) -> None:
        self._changed(name)
        self._s.services[name] = definition

    def delete_service(self, name: str) -> bool:
        if name not in self._s.services:
            return False
        self._changed(name)
        del self._s.services[name]
        for key in [k for k in self._s.secrets if k[0] == name]:
            del self._s.secrets[key]
        for key in [k for k, r in self._s.records.items() if r.service == name]:
            del self._s.records[key]
        return True

    def secret(self, service: str, field: str) -> bytes | None:
        return self._s.secrets.get((service, field))

    def secrets(self, field: str) -> dict[str, bytes]:
        return {service: blob for (service, f), blob in sorted(self._s.secrets.items()) if f == field}

    def put_secret(self, service: str, field: str, blob: bytes) -> None:
        if service not in self._s.services:
            raise StoreConflict(f"no service {service!r} to hold the secret field {field!r}")
        self._changed(service)
        self._s.secrets[service, field] = bytes(blob)

    def delete_secret(self, service: str, field: str) -> bool:
        if (service, field) not in self._s.secrets:
            return False
        self._changed(service)
        del self._s.secrets[service, field]
        return True

    def changed_services(self, since: int) -> tuple[int, set[str] | None]:
        start, feed = self._s.feed_start, self._s.feed
        position = start + len(feed)
        if not start <= since <= position:
            return position, None
        return position, set(feed[since - start :])

    # -- records -------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Record | None:
        found = self._s.records.get((kind, key))
        return None if found is None else _copy(found)

    def records(self, kind: str) -> list[Record]:
        return [_copy(r) for (k, _), r in sorted(self._s.records.items()) if k == kind]

    def put(
        self,
        kind: str,
        key: str,
        fields: Fields,
        *,
        service: str | None = None,
        expect: int = ANY,
        quiet: bool = False,
    ) -> int:
        values = copy_fields(fields)
        current = self._s.records.get((kind, key))
        _compare(kind, key, current.version if current else 0, expect)
        if service is not None and service not in self._s.services:
            raise StoreConflict(f"no service {service!r} to hold the {kind} record {key!r}")
        self._write(quiet)
        version = (current.version if current else 0) + 1
        self._s.records[kind, key] = Record(kind, key, values, version, service)
        return version

    def delete(self, kind: str, key: str, *, expect: int = ANY, quiet: bool = False) -> bool:
        current = self._s.records.get((kind, key))
        _compare(kind, key, current.version if current else 0, expect)
        if current is None:
            return False
        self._write(quiet)
        del self._s.records[kind, key]
        return True

    # -- streams and header --------------------------------------------------------------------

    def tail(self, stream: str) -> tuple[int, bytes] | None:
        entries = self._s.streams.get(stream)
        return entries[-1] if entries else None

    def append(self, stream: str, entry: bytes, *, expect: int) -> int:
        last = self.tail(stream)
        if (last[0] if last else 0) != expect:
            raise StoreConflict(f"the stream {stream!r} moved on: its tail is not entry {expect}")
        self._write(quiet=True)
        entries = self._s.streams.setdefault(stream, [])
        entries.append((expect + 1, bytes(entry)))
        del entries[:-KEEP_ENTRIES]
        return expect + 1

    def meta(self) -> dict[str, str]:
        return dict(self._s.meta)

    def set_meta(self, rows: Mapping[str, str]) -> None:
        self._write(quiet=True)
        self._s.meta.update(rows)


def _copy(record: Record) -> Record:
    fields: dict[str, Value] = dict(record.fields)
    return Record(record.kind, record.key, fields, record.version, record.service)


def _compare(kind: str, key: str, version: int, expect: int) -> None:
    if expect != ANY and version != expect:
        raise StoreConflict(
            f"the {kind} record {key!r} is at version {version}, not {expect}: it changed since it was read"
        )
