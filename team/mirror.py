"""The replica's working copy of the team's services: a private local vault the proxy runs on.

The addon pipeline (destination binding, dial guard, policy, budgets, injection, redaction,
rate-limit recording) reads a :class:`~clavis_mcp.vault.Vault`. Rather than a second
implementation of every addon, each replica process keeps a throwaway vault in a private
directory (on tmpfs when the system has one, so nothing reaches a disk), encrypted under a key
made for this process, and brings it up to date from PostgreSQL and OpenBao whenever the
team's change counter moved. The directory is removed when the replica stops.

This is the seam issue 13's storage protocol will replace: once the vault runs on a ``Store``,
the replica hands it a team store directly and this copy goes away.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from clavis_mcp.vault import Secret, Service, Vault
from clavis_mcp.vault.errors import ApiRefused, DuplicateService, UnknownService

from .refs_guard import REFUSED, carries_ref
from .storage import StoredService, TeamStore, service_from_json

SHM = Path("/dev/shm")
PREFIX = "clavis-replica-"
logger = logging.getLogger(__name__)
SYNC_PASSES = 3
CHANGED = "service {name!r} changed while this replica was loading it; try again"


def _state(entry: StoredService) -> tuple[str, int]:
    """What a loaded service was loaded from. The definition carries the generation an add stamps
    (team/storage.py), so a name removed and added again with the same definition and the same KV
    version number still differs."""
    return json.dumps(entry.definition, sort_keys=True), entry.secret_version


def sweep(base: Path) -> None:
    """Remove the copies left by replicas that died without cleaning up (a killed worker)."""
    for path in base.glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if not pid.isdigit() or path.owner() != getpass.getuser():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            continue


class Mirror:
    def __init__(self, store: TeamStore) -> None:
        self._store = store
        base = SHM if SHM.is_dir() else Path(tempfile.gettempdir())
        sweep(base)
        self.home = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        self.vault = Vault.create(self.home / "vault")
        self._synced: dict[str, tuple[str, int]] = {}  # name -> (definition as stored, secret version)
        self._version: int | None = None
        self.definitions: dict[str, dict[str, Any]] = {}  # as stored, with team-only parts (a budget)
        self.oauth_expiry: dict[str, float] = {}  # OAuth services' access-token expiry, as of the last sync
        self.unavailable: dict[str, str] = {}  # services left out of the copy: name -> why (no secret)
        self._failed: dict[str, tuple[str, int]] = {}  # their state when they failed: logged once per state

    def sync(self) -> None:
        """Apply every change made since the last sync (by any replica); one query when none.

        A service that cannot be loaded (its credential's version is gone, the reference guard
        refuses it, its definition is invalid) is left out of the copy and listed in
        :attr:`unavailable`, logged once: one bad service must not stop every other one. OpenBao
        or PostgreSQL being unreachable still fails the whole sync, which the next request retries.

        The rows and the credentials are read one after the other, not atomically: a service
        removed and added again in between would pair the new secret with the old definition.
        So the rows are read again afterwards, and a service whose row moved is loaded again
        (a few passes at most, then left out until the next sync)."""
        for attempt in range(SYNC_PASSES):
            if self._sync_pass(last=attempt == SYNC_PASSES - 1):
                return

    def _sync_pass(self, *, last: bool) -> bool:
        """One pass of :meth:`sync`; False if a row moved while its credential was read (a credential
        gone meanwhile included: the next pass loads what replaced it rather than answering 503)."""
        version = self._store.version()
        if version == self._version:
            return True
        stored = self._store.services()
        # What the copy holds, not only what a sync put there: check_add puts a service in directly.
        for name in [s.name for s in self.vault.list_services() if s.name not in stored]:
            self.vault.remove_service(name)
            self._synced.pop(name, None)
        for name in [n for n in self._failed if n not in stored]:
            del self._failed[name], self.unavailable[name]
        tried: dict[str, tuple[tuple[str, int], str | None]] = {}  # name -> (state, why it is not loaded)
        for name, entry in sorted(stored.items()):
            state = _state(entry)
            if self._synced.get(name) != state:
                tried[name] = state, self._apply(name, entry)
        again = self._store.services() if tried else stored
        moved = {name for name, (state, _) in tried.items() if name not in again or _state(again[name]) != state}
        for name, (state, reason) in tried.items():
            if name in moved:  # what was read may pair one lifetime's secret with another's definition
                self._leave_out(name, state, CHANGED.format(name=name), log=last)
            elif reason is not None:
                self._leave_out(name, state, reason)
            else:
                self._synced[name] = state
                self._failed.pop(name, None)
                self.unavailable.pop(name, None)
        self.definitions = {name: entry.definition for name, entry in stored.items()}
        self.oauth_expiry = {n: e.oauth_expires_at for n, e in stored.items() if e.oauth_expires_at is not None}
        if moved:
            return False  # the change counter has moved too: the next pass reloads them
        self._version = version
        return True

    def _leave_out(self, name: str, state: tuple[str, int], reason: str, *, log: bool = True) -> None:
        """Fail closed: never the previous credential instead."""
        self._synced.pop(name, None)
        with suppress(UnknownService):
            self.vault.remove_service(name)
        if log and self._failed.get(name) != state:
            logger.warning("team service %r is not loaded: %s", name, reason)
        self._failed[name], self.unavailable[name] = state, reason

    def _apply(self, name: str, entry: StoredService) -> str | None:
        """Load one service into the copy; None, or why it cannot be used (no secret in the text)."""
        secret = self._store.secret(name, entry.secret_version)
        if secret is None:
            return (
                f"the credential of {name!r} (version {entry.secret_version}) is missing from OpenBao; "
                f"an admin sets it again with PUT /v1/admin/services/{name}/secret"
            )
        if carries_ref(entry.definition) or carries_ref(secret.reveal()):  # calls would read it unresolved
            return f"service {name!r} was not loaded: {REFUSED}"
        try:
            service = service_from_json({**entry.definition, "name": name})
            with suppress(UnknownService):
                self.vault.remove_service(name)
            self.vault.add_service(service, secret)
        except (ApiRefused, DuplicateService) as exc:
            return f"service {name!r} was not loaded: {exc}; an admin removes it and adds it again"
        return None

    def check_add(self, service: Service, secret: Secret) -> None:
        """Refuse, as the local vault does, a service whose hosts overlap another's (DuplicateService)."""
        self.sync()
        self.vault.add_service(service, secret)

    def close(self) -> None:
        self.vault.close()
        shutil.rmtree(self.home, ignore_errors=True)
