"""Health checks of a vault home, for `clavis-mcp doctor`: each says what is wrong and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ClavisError
from .store import Vault


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_vault(home: Path) -> list[Check]:
    """Open the vault and decrypt every secret; report the first failure of each kind."""
    try:
        vault = Vault.open(home)
    except ClavisError as exc:
        return [Check("vault", False, str(exc), "see the message above")]
    try:
        services = vault.list_services()
        checks = [Check("vault", True, f"{home}: {len(services)} service(s), key store: key file")]
        for service in services:
            try:
                vault.secret(service.name)
                checks.append(Check(f"secret {service.name}", True, "decrypts and passes its integrity check"))
            except ClavisError as exc:
                checks.append(Check(f"secret {service.name}", False, str(exc), f"clavis-mcp rotate {service.name}"))
        return checks
    finally:
        vault.close()
