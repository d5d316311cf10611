"""Health checks of a vault home, for `clavis-mcp doctor`: each says what is wrong and the fix.

The checks that need no key (file permissions, which key store) run first, so a locked
vault still gets a useful report.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ClavisError
from .keys.keystore import AskPassphrase
from .store import DB_NAME, Vault, read_key_store


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_vault(home: Path, ask_passphrase: AskPassphrase | None = None) -> list[Check]:
    """Permissions, key store, database integrity, then every secret decrypted once."""
    if not (home / DB_NAME).exists():
        return [Check("vault", False, f"no vault at {home}", "clavis-mcp init")]
    checks = [check_permissions(home)]
    try:
        info = read_key_store(home)
        checks.append(Check("key store", True, info.description))
    except ClavisError as exc:
        checks.append(Check("key store", False, str(exc), "restore the vault from a backup"))
    try:
        vault = Vault.open(home, ask_passphrase=ask_passphrase)
    except ClavisError as exc:
        return [*checks, Check("vault", False, str(exc), "see the message above")]
    try:
        services = vault.list_services()
        integrity = vault.store.check()
        checks.append(
            Check("vault", integrity == "ok", f"{home / DB_NAME}: {len(services)} service(s), database {integrity}")
        )
        for service in services:
            try:
                vault.secret(service.name)
                checks.append(Check(f"secret {service.name}", True, "decrypts and passes its integrity check"))
            except ClavisError as exc:
                checks.append(Check(f"secret {service.name}", False, str(exc), f"clavis-mcp rotate {service.name}"))
        return checks
    finally:
        vault.close()


def check_permissions(home: Path) -> Check:
    """Every folder 0700 and every file 0600 under ``home`` (POSIX), with the chmod that fixes it."""
    if os.name != "posix":
        return Check("permissions", True, "not checked on this platform; keep the folder private to your account")
    loose = []
    for path in [home, *sorted(home.rglob("*"))]:
        if path.is_symlink():
            continue
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            loose.append(path)
    if not loose:
        return Check("permissions", True, f"{home} is 0700 and every file in it is private to its owner")
    listed = ", ".join(str(p) for p in loose[:5]) + (" ..." if len(loose) > 5 else "")
    return Check(
        "permissions",
        False,
        f"readable or writable by other users: {listed}",
        f"chmod -R go-rwx '{home}'",
    )
