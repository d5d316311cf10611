"""The narrow storage protocol the vault keeps its state behind.

The vault (``vault/store.py``) and its repositories (agents, OAuth state, budgets, rate limits,
service policy, the audit anchor) speak only this protocol; nothing above ``vault/storage/``
writes SQL. Encryption stays above the store: every secret it holds is an opaque sealed blob
(``Vault.seal``), bound by its associated data to where the vault put it, so a backend never
sees a plaintext and cannot move a ciphertext to another place without the vault noticing.

What a store holds
------------------
- **services**: ``name -> definition`` (the vault's JSON text of a service; no secret in it);
- **secrets**: several named fields per service, ``(service, field) -> sealed blob``;
- **records**: small keyed records of the repositories, addressed by ``(kind, key)``, each a
  flat mapping of field names to :data:`Value` (``None``, bool, int, float, str or bytes) with a
  ``version`` (1 at creation, +1 on every write) for compare-and-set. A record may be *bound* to
  a service: it goes when the service goes;
- **streams**: append-only sequences of blobs (the audit log's high-water mark), numbered from 1;
  appending is a compare-and-set on the tail number;
- **meta**: a few named strings, the store's header (vault id, key wrapping).

Deleting a service deletes its secrets and every record bound to it, in the same batch.

The change counter
------------------
:meth:`Store.changes` is a number that grows whenever a service, a secret, or a record written
without ``quiet`` changes, by this process or any other. Snapshots (what the proxy injects
from) are rebuilt when it moved, so it must be cheap to read. ``quiet`` writes (rate limits seen
per response, the audit mark) do not move it, so that traffic does not make every process reload.

The change feed
---------------
Every change to a service's definition or secrets (added, replaced, removed) is also written to
a feed of service names, numbered from 1; :meth:`Batch.changed_services` reads it since a
position, so a reader that keeps what it read (the vault's listing and snapshot) reads again
only the services that changed, not all of them (issue 18.4). A store keeps only the newest part
of its feed; a reader further behind reads everything again.

Batches
-------
Every read and write happens in a :class:`Batch`: ``with store.atomic() as b:`` commits every
write in it at the end or none of them (an exception rolls all back), and batches are
serializable across processes (SQLite: ``BEGIN IMMEDIATE``). ``with store.read() as b:`` is a
consistent view of one moment (snapshots read the services and all their secrets in one), which
takes no write lock; writing in it is an error. An ``atomic()`` or ``read()`` opened inside an
``atomic()`` on the same thread joins the outer batch.

Compare-and-set: ``put``/``delete`` take ``expect``: :data:`ANY` (unconditional), ``0`` (the
record must not exist), or the version last read. A mismatch raises
:class:`~clavis_mcp.vault.errors.StoreConflict` and the batch's writes are rolled back if it
propagates. Leases and counters are a ``get`` then a ``put(..., expect=record.version)``, or a
read-decide-write inside one ``atomic()``.

Implementing a backend
----------------------
One class with the four methods of :class:`Store`, and a batch class with the methods of
:class:`Batch` (``vault/storage/memory.py`` is the shortest complete example; ``sqlite.py`` the
local vault). Then add it to ``STORES`` and the ``pair`` fixture of
``tests/vault/test_store_contract.py`` (two handles on one storage, as two processes would have)
and make that suite pass: it checks compare-and-set conflicts, the change counter, cascades,
all-or-nothing and nested batches, read views, streams, the change feed and the value types.
Backends that keep records as JSON use :func:`encode_fields` / :func:`decode_fields` for the
bytes values. Nothing above the storage layer changes: build ``Vault(home, store, key, vault_id)`` over the new store.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

Value = None | bool | int | float | str | bytes
Fields = Mapping[str, Value]

ANY = -1
"""``expect=ANY``: write whatever version the record is at (no compare-and-set)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One small keyed record; ``fields`` is a private copy, ``version`` counts its writes."""

    kind: str
    key: str
    fields: dict[str, Value]
    version: int
    service: str | None = None


class Batch(Protocol):
    """Reads and writes inside one atomic batch (or one consistent read view)."""

    # -- services and their secrets ------------------------------------------------------------

    def services(self) -> dict[str, str]:
        """Every service's definition by name, in name order."""
        ...

    def service(self, name: str) -> str | None:
        """One service's definition, or None if there is no such service."""
        ...

    def put_service(self, name: str, definition: str) -> None:
        """Create or replace a service's definition (its secrets and records stay)."""
        ...

    def delete_service(self, name: str) -> bool:
        """Delete the service, its secrets and its bound records; False if there was none."""
        ...

    def secret(self, service: str, field: str) -> bytes | None:
        """One sealed secret field of a service, or None."""
        ...

    def secrets(self, field: str) -> dict[str, bytes]:
        """The sealed ``field`` of every service that has one, by service name, in one read (the
        vault's snapshot reads every credential; one query per service would cost more)."""
        ...

    def put_secret(self, service: str, field: str, blob: bytes) -> None:
        """Store or replace a sealed secret field; StoreConflict if the service does not exist."""
        ...

    def delete_secret(self, service: str, field: str) -> bool: ...

    def changed_services(self, since: int) -> tuple[int, set[str] | None]:
        """(the feed's position now, the services changed after position ``since``), where a
        change is a definition or secret field written or removed, by any process; 0 is the
        position before the first change. The set is None when the feed no longer reaches back to
        ``since`` (or never did: a position from another store): read every service again."""
        ...

    # -- records -------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Record | None: ...

    def records(self, kind: str) -> list[Record]:
        """Every record of ``kind``, in key order."""
        ...

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
        """Create or replace a record whole; return its new version.

        ``service`` binds the record to a service (StoreConflict if it does not exist); ``expect``
        is the compare-and-set (see the module docstring); ``quiet`` leaves the change counter."""
        ...

    def delete(self, kind: str, key: str, *, expect: int = ANY, quiet: bool = False) -> bool:
        """Delete a record; False if there was none (with ``expect`` > 0: StoreConflict)."""
        ...

    # -- append-only streams -------------------------------------------------------------------

    def tail(self, stream: str) -> tuple[int, bytes] | None:
        """The last entry of ``stream`` and its number, or None if it has none."""
        ...

    def append(self, stream: str, entry: bytes, *, expect: int) -> int:
        """Append ``entry`` as number ``expect + 1`` if the tail is number ``expect`` (0: empty);
        StoreConflict otherwise. A backend keeps at least the last entry and may drop older ones.
        Appends never move the change counter."""
        ...

    # -- header --------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """The store's header rows."""
        ...

    def set_meta(self, rows: Mapping[str, str]) -> None: ...


class Store(Protocol):
    """A vault's storage: open a batch to read or write; the change counter; a health check."""

    def atomic(self) -> AbstractContextManager[Batch]:
        """A write batch: all of its writes commit at the end, or none (on any exception)."""
        ...

    def read(self) -> AbstractContextManager[Batch]:
        """A consistent read-only view of one moment, taking no write lock."""
        ...

    def changes(self) -> int:
        """The change counter (see the module docstring); cheap enough to call per request."""
        ...

    def check(self) -> str:
        """``"ok"``, or what is wrong with the storage (for ``clavis-mcp doctor``)."""
        ...

    def close(self) -> None: ...


# -- a JSON form of record fields, for backends that store records as JSON text ----------------

_BYTES = "$b64"


def encode_fields(fields: Fields) -> str:
    """``fields`` as JSON text (sorted keys); a bytes value becomes ``{"$b64": "<base64>"}``."""
    return json.dumps(
        {k: {_BYTES: base64.b64encode(v).decode()} if isinstance(v, bytes) else v for k, v in fields.items()},
        sort_keys=True,
    )


def decode_fields(text: str | bytes) -> dict[str, Value]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a record's fields must be a JSON object")
    return {k: base64.b64decode(v[_BYTES]) if isinstance(v, dict) else v for k, v in data.items()}


def copy_fields(fields: Fields) -> dict[str, Value]:
    """A private copy that holds only :data:`Value` types (ValueError otherwise)."""
    for name, value in fields.items():
        if value is not None and not isinstance(value, bool | int | float | str | bytes):
            raise ValueError(f"record field {name!r} must be None, bool, int, float, str or bytes")
    return dict(fields)
