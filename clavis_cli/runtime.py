"""Opening the vault together with its audit log and CA, as every verb needs them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from certs import LocalCA
from vault import AuditLog, Vault, clavis_home


@dataclass
class Runtime:
    vault: Vault
    audit: AuditLog
    ca: LocalCA


@contextmanager
def open_runtime() -> Iterator[Runtime]:
    home = clavis_home()
    vault = Vault.open(home)
    try:
        yield Runtime(vault, AuditLog.for_vault(vault), LocalCA(home / "certs"))
    finally:
        vault.close()
