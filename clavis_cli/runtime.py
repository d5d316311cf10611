"""Opening the vault together with its audit log and CA, as every verb needs them."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, Vault, clavis_home


@dataclass
class Runtime:
    vault: Vault
    audit: AuditLog
    ca: LocalCA


def ask_passphrase() -> str:
    """Hidden prompt on the terminal (getpass uses /dev/tty, so stdout stays clean for MCP)."""
    if not sys.stdin.isatty():
        return ""
    return getpass.getpass("clavis-mcp vault passphrase: ")


@contextmanager
def open_runtime() -> Iterator[Runtime]:
    home = clavis_home()
    vault = Vault.open(home, ask_passphrase=ask_passphrase)
    audit: AuditLog | None = None
    try:
        audit = AuditLog.for_vault(vault)
        yield Runtime(vault, audit, LocalCA(home / "certs"))
    finally:
        try:
            if audit is not None:
                audit.close()  # a clean shutdown raises the vault's high-water mark to the last record
        finally:
            vault.close()
