"""Opening the vault together with its audit log and CA, as every verb needs them; and what a
failure of the file system means for the user, in words (``explain_failure``).

A verb that meets a full disk, a read-only or unwritable folder, or a busy vault stops with one
line that names the cause and the fix: SQLite writes in one transaction, so nothing half done
is left behind, and a read-only folder is never taken for a damaged vault.
"""

from __future__ import annotations

import errno
import getpass
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clavis_mcp.certs import LocalCA
from clavis_mcp.vault import AuditLog, Vault, VaultError, clavis_home

NOTHING_CHANGED = "nothing was changed"
MAX_IMPORT_BYTES = 16 * 1024 * 1024  # an export of thousands of services is a few MB


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


def check_home(home: Path) -> None:
    """Refuse, with the cause, a home that is a file or a folder this process cannot write in:
    SQLite, the audit log and its lock all write there, even to read (the vault is not damaged)."""
    if home.exists() and not home.is_dir():
        raise VaultError(f"CLAVIS_HOME {home} is a file, not a folder; point CLAVIS_HOME at a folder, or move the file")
    if not home.is_dir():
        return  # Vault.open says there is no vault, and how to create one
    if os.statvfs(home).f_flag & os.ST_RDONLY:
        raise VaultError(read_only(home, "it is on a read-only file system"))
    if not os.access(home, os.W_OK | os.X_OK):
        raise VaultError(read_only(home, "this user may not write in it"))


def read_only(path: Path, why: str) -> str:
    return (
        f"{path} cannot be written ({why}); clavis-mcp writes its lock, audit log and database journal "
        f"in the vault folder even to read. The vault is not damaged: make the folder writable again "
        f"(remount it read-write, or fix its owner and permissions), then rerun; {NOTHING_CHANGED}"
    )


def explain_failure(exc: OSError | sqlite3.Error) -> str:
    """One or two lines for a file-system or database failure: the cause, then the fix."""
    where = getattr(exc, "filename", None) or clavis_home()
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or "disk is full" in text or "disk full" in text:
        return f"the disk holding {where} is full; {NOTHING_CHANGED}: free some space and run the command again"
    if code == errno.EROFS or "readonly database" in text or "read-only" in text:
        return read_only(Path(where), "it is on a read-only file system or the file is read-only")
    if code in (errno.EACCES, errno.EPERM):
        return read_only(Path(where), "permission denied")
    if code == errno.ENOENT:
        return f"{where} is missing; {NOTHING_CHANGED}: check CLAVIS_HOME, or restore the file from a backup"
    if "locked" in text or "busy" in text:
        return f"the vault is busy (another clavis-mcp process is writing); {NOTHING_CHANGED}: run the command again"
    if code == errno.EFBIG:
        return f"a file in {where} reached the size limit set for this process; {NOTHING_CHANGED}: raise the limit"
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot use {where} ({why}); {NOTHING_CHANGED}: check the disk and the folder's permissions"


def read_bounded_text(path: Path, limit: int = MAX_IMPORT_BYTES) -> str:
    """The text of a file a verb reads whole (``import``), refused past ``limit`` bytes: a path
    such as /dev/zero or a wrong multi-GB file must not hang the command or take its memory."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise VaultError(
            f"{path} is larger than {limit // (1024 * 1024)} MiB (or never ends, like a device); an export "
            f"file is far smaller: check the path. {NOTHING_CHANGED[0].upper()}{NOTHING_CHANGED[1:]}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise VaultError(f"{path} is not UTF-8 text (an export file is TOML); check the path") from None


@contextmanager
def open_runtime() -> Iterator[Runtime]:
    home = clavis_home()
    check_home(home)
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
