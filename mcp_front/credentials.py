"""What the front end knows about a credential: its state, when it was last used and checked.

One place decides a credential's state, so list_services, get_credentials and
check_credential_status never disagree, and so token refresh (OAuth) plugs in here once:
``fresh_credential`` is where an expired token would be refreshed before use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from vault import AuditLog, Secret, Service, Vault
from vault.audit import ACTION, DECISION, REASON, SERVICE, STATUS, TIME
from vault.errors import ClavisError

from .models import CredentialState, LastCheck

CHECK_ACTION = "check"
STATES: tuple[CredentialState, ...] = ("valid", "invalid", "expired", "reauth_required", "locked", "unknown")
DETAILS: dict[CredentialState, str] = {
    "valid": "the provider accepted the credential at the last live check",
    "invalid": "the provider rejected the credential at the last live check; rotate it with: clavis-mcp rotate NAME",
    "expired": "the credential has expired; rotate it with: clavis-mcp rotate NAME",
    "reauth_required": "the provider needs a new sign-in; run: clavis-mcp oauth login NAME",
    "locked": "the vault is locked; run: clavis-mcp doctor",
    "unknown": "stored and intact in the vault; not verified with the provider (check_credential_status live=true)",
}


class CredentialExpired(ClavisError):
    """The credential's expiry has passed and it cannot be refreshed here."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Facts about a service taken from the audit log."""

    last_used_at: float | None = None
    last_check: LastCheck | None = None


def usage_by_service(audit: AuditLog) -> dict[str, Usage]:
    """Last injection and last live check of every service, from one pass over the audit log."""
    used: dict[str, float] = {}
    checks: dict[str, LastCheck] = {}
    for record in audit.records():
        service, when = record.get(SERVICE), _unix(record.get(TIME))
        if not service or when is None:
            continue
        if record.get(ACTION) == CHECK_ACTION and record.get(DECISION) in STATES:
            checks[service] = LastCheck(
                checked_at=when, state=record[DECISION], status=record.get(STATUS), detail=record.get(REASON, "")
            )
        elif record.get(DECISION) == "injected":
            used[service] = max(when, used.get(service, 0.0))
    return {name: Usage(used.get(name), checks.get(name)) for name in used.keys() | checks.keys()}


def credential_state(service: Service, usage: Usage, now: float | None = None) -> CredentialState:
    """Expired beats everything; otherwise the last live check says, if there was one since creation."""
    now = time.time() if now is None else now
    if service.expires_at is not None and service.expires_at <= now:
        return "expired"
    check = usage.last_check
    if check is not None and check.checked_at >= service.created_at:
        return check.state
    return "unknown"


def detail(state: CredentialState, service: str) -> str:
    return DETAILS[state].replace("NAME", service)


def fresh_credential(vault: Vault, service: Service) -> Secret:
    """The secret, ready for use: refused if expired (the place where a refresh would happen)."""
    if service.expires_at is not None and service.expires_at <= time.time():
        raise CredentialExpired(f"service {service.name!r}: {detail('expired', service.name)}")
    return vault.secret(service.name)


def _unix(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
