"""What the front end knows about a credential: its state, when it was last used and checked.

One place decides a credential's state, so list_services, get_credentials and
check_credential_status never disagree, and so token refresh (OAuth) plugs in here once:
``fresh_credential`` is where an expired OAuth token is refreshed before use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from clavis_mcp.vault import AuditLog, Secret, Service, Vault
from clavis_mcp.vault.audit.filters import AuditFilter
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import ACTION, INJECTED, REASON, STATUS, TIME
from clavis_mcp.vault.auth.fields import credential
from clavis_mcp.vault.errors import CredentialExpired
from clavis_mcp.vault.oauth.refresh import ensure_fresh
from clavis_mcp.vault.oauth.state import credential_state as oauth_state
from clavis_mcp.vault.oauth.state import is_oauth
from clavis_mcp.vault.oauth.state import load as oauth_load

from .models import CredentialState, LastCheck
from .times import iso

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


@dataclass(frozen=True, slots=True)
class Usage:
    """Facts about a service taken from the audit log."""

    last_used_at: float | None = None
    last_check: LastCheck | None = None


def usage_by_service(audit: AuditLog, services: Iterable[str]) -> dict[str, Usage]:
    """Last injection and last live check of each service, from the audit log's review index.

    The index (a cache beside the log, brought up to date incrementally) answers each question
    with one indexed lookup instead of a read of the whole log.
    """
    index = AuditIndex(audit.files)
    try:
        index.refresh()
        return {name: Usage(_last_used(index, name), _last_check(index, name)) for name in services}
    finally:
        index.close()


def _last_used(index: AuditIndex, service: str) -> float | None:
    record = index.newest(AuditFilter(service=service, decision=INJECTED))
    return _unix(record.get(TIME)) if record else None


def _last_check(index: AuditIndex, service: str) -> LastCheck | None:
    checks = []
    for state in STATES:
        record = index.newest(AuditFilter(service=service, decision=state))
        when = _unix(record.get(TIME)) if record else None
        if record is not None and when is not None and record.get(ACTION) == CHECK_ACTION:
            checks.append(LastCheck(checked_at=iso(when) or "", state=state, status=record.get(STATUS),
                                    detail=record.get(REASON, "")))  # fmt: skip
    return max(checks, key=lambda check: check.checked_at, default=None)  # ISO 8601 in UTC sorts as time


def credential_state(
    vault: Vault, service: Service, usage: Usage, now: float | None = None
) -> tuple[CredentialState, str]:
    """(state, what it means and what to do), from what the vault alone knows.

    A static key past its expiry is ``expired``; an OAuth grant in trouble (dead grant,
    expired without a refresh) outranks an older live check; otherwise the last live check
    since the credential was stored decides; else ``unknown``.
    """
    now = time.time() if now is None else now
    if service.expires_at is not None and service.expires_at <= now:
        return "expired", detail("expired", service.name)
    oauth = oauth_state(vault, service.name, now)
    if oauth is not None and oauth[0] != "unknown":
        return oauth
    check = usage.last_check
    if check is not None and check.checked_at >= (iso(service.created_at) or ""):
        return check.state, f"{detail(check.state, service.name)} ({check.detail})"
    if oauth is not None:
        return oauth
    return "unknown", detail("unknown", service.name)


def expires_at(vault: Vault, service: Service) -> float | None:
    """When the credential in use expires: the stored expiry of a key, else an OAuth access token's."""
    if service.expires_at is not None:
        return service.expires_at
    record = oauth_load(vault, service.name) if is_oauth(service) else None
    return record.expires_at if record is not None else None


def detail(state: CredentialState, service: str) -> str:
    return DETAILS[state].replace("NAME", service)


async def fresh_credential(vault: Vault, service: Service, audit: AuditLog) -> Secret:
    """The secret, ready for use: an OAuth access token is refreshed first if it is due (raising
    ``ReauthRequired`` with the fix when the grant is dead); an expired static key is refused."""
    token = await ensure_fresh(vault, service.name, audit=audit)  # a token-endpoint call is audited
    if token is not None:
        return token
    if service.expires_at is not None and service.expires_at <= time.time():
        raise CredentialExpired(f"service {service.name!r}: {detail('expired', service.name)}")
    return credential(vault, service.name)  # a secret reference resolved, as the proxy injects it


def _unix(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
