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
import os
import shutil
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from clavis_mcp.vault import Secret, Service, Vault
from clavis_mcp.vault.errors import TeamError, UnknownService

from .refs_guard import REFUSED, carries_ref
from .storage import TeamStore, service_from_json

SHM = Path("/dev/shm")
PREFIX = "clavis-replica-"


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

    def sync(self) -> None:
        """Apply every change made since the last sync (by any replica); one query when none."""
        version = self._store.version()
        if version == self._version:
            return
        stored = self._store.services()
        # What the copy holds, not only what a sync put there: check_add puts a service in directly.
        for name in [s.name for s in self.vault.list_services() if s.name not in stored]:
            self.vault.remove_service(name)
            self._synced.pop(name, None)
        for name, entry in sorted(stored.items()):
            text = json.dumps(entry.definition, sort_keys=True)
            if self._synced.get(name) == (text, entry.secret_version):
                continue
            self._apply(name, entry.definition)
            self._synced[name] = (text, entry.secret_version)
        self.definitions = {name: entry.definition for name, entry in stored.items()}
        self.oauth_expiry = {n: e.oauth_expires_at for n, e in stored.items() if e.oauth_expires_at is not None}
        self._version = version

    def _apply(self, name: str, definition: dict[str, Any]) -> None:
        secret = self._store.secret(name)
        if secret is None:
            raise TeamError(f"the credential of {name!r} is missing from OpenBao; set it again (PUT .../secret)")
        if carries_ref(definition) or carries_ref(secret.reveal()):  # fail closed: calls read it unresolved
            raise TeamError(f"service {name!r} was not loaded: {REFUSED}")
        service = service_from_json({**definition, "name": name})
        with suppress(UnknownService):
            self.vault.remove_service(name)
        self.vault.add_service(service, secret)

    def check_add(self, service: Service, secret: Secret) -> None:
        """Refuse, as the local vault does, a service whose hosts overlap another's (DuplicateService)."""
        self.sync()
        self.vault.add_service(service, secret)

    def close(self) -> None:
        self.vault.close()
        shutil.rmtree(self.home, ignore_errors=True)
