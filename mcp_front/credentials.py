"""What the front end knows about a credential: its state, when it was last used and checked.

One place decides a credential's state, so list_services, get_credentials and
check_credential_status never disagree, and so token refresh (OAuth) plugs in here once:
``fresh_credential`` is where an expired OAuth token is refreshed before use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from clavis_mcp.vault import AuditLog, Secret, Service, Vault
from clavis_mcp.vault.audit.index import AuditIndex
from clavis_mcp.vault.audit.log import ACTION, EXCHANGE_FAILED, EXCHANGED, INJECTED, REASON, STATUS, TOKEN_EXCHANGE
from clavis_mcp.vault.auth.base import CREDENTIAL
from clavis_mcp.vault.auth.fields import credential, method_secrets
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


def usage_by_service(audit: AuditLog, services: Sequence[str]) -> dict[str, Usage]:
    """Last injection and last live check of each service, from the audit log's review index.

    The index (a cache beside the log, brought up to date incrementally) keeps the newest record
    of each service and decision: one query answers for every service asked, and only the
    newest check records are read back from the log (for their status and reason).
    """
    index = AuditIndex(audit.files)
    try:
        index.refresh()
        used: dict[str, float] = {}
        checks: dict[str, LastCheck] = {}
        for service, decision, when, position in sorted(index.latest(services), key=lambda row: row[3]):
            if decision == INJECTED:
                used[service] = when
            elif decision in STATES:  # the newest of each state; the last in the log wins
                check = _check(index, position, decision, when)
                if check is not None:
                    checks[service] = check
        return {name: Usage(used.get(name), checks.get(name)) for name in services}
    finally:
        index.close()


def _check(index: AuditIndex, position: tuple[int, int], state: CredentialState, when: float) -> LastCheck | None:
    """The live check recorded at ``position``; None if the record there is not one."""
    for record in index.read([position]):
        if record.get(ACTION) == CHECK_ACTION:
            return LastCheck(checked_at=iso(when) or "", state=state, status=record.get(STATUS),
                             detail=record.get(REASON, ""))  # fmt: skip
    return None


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
    oauth = oauth_state(vault, service.name, now) if is_oauth(service) else None  # no record for other methods
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
    ``ReauthRequired`` with the fix when the grant is dead); an expired static key is refused.

    A method that trades its stored key for a short-lived token (a GitHub App) gives that token,
    exchanged first if due, as the proxy would inject it: never the key that mints the tokens."""
    token = await ensure_fresh(vault, service.name, audit=audit)  # a token-endpoint call is audited
    if token is not None:
        return token
    if service.expires_at is not None and service.expires_at <= time.time():
        raise CredentialExpired(f"service {service.name!r}: {detail('expired', service.name)}")
    field = service.auth.revealed_field
    if field is not None and field != CREDENTIAL:
        return await _token(vault, service, field, audit)
    return credential(vault, service.name)  # a secret reference resolved, as the proxy injects it


async def _token(vault: Vault, service: Service, field: str, audit: AuditLog) -> Secret:
    """The token in ``field``, exchanged first if the method exchanges and it is due; each exchange
    is audited as the proxy's are."""
    name = service.name
    if not getattr(service.auth, "exchanges_tokens", False):
        return vault.secret(name, field)

    def record(failure: str | None) -> None:
        audit.append(source="mcp", service=name, action=TOKEN_EXCHANGE,
                     decision=EXCHANGED if failure is None else EXCHANGE_FAILED, reason=failure)  # fmt: skip

    secrets = method_secrets(vault, vault.snapshot(), name)
    await service.auth.refresh(vault, name, secrets, local=service.local, on_exchange=record)  # type: ignore[attr-defined]
    return vault.secret(name, field)
