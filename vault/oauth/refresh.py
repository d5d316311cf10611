"""Fresh access tokens for OAuth services, with exactly one refresh however many ask at once.

Several processes share a vault (the MCP server, a standalone proxy, the CLI), each with many
requests in flight. When a token is due, each caller takes a decision under SQLite's
``BEGIN IMMEDIATE`` (one writer at a time across processes), re-reading the row inside it:
use the token, wait for the process that holds the refresh lease, or take the lease itself.
The lease holder calls the token endpoint outside any transaction (the vault stays usable
while it waits) and commits the new tokens in one transaction; the waiters then read them.
Within a process an asyncio lock keeps concurrent requests from polling the database.

A dead grant (``invalid_grant``) is remembered: every caller gets ``ReauthRequired`` with the
command that fixes it, and nobody calls the token endpoint again until a new login. A token
endpoint that is down is left alone for a growing delay; meanwhile the current token is used
as long as it is still valid, and a clear error is given once it is not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref

from ..audit.log import AuditLog
from ..dialing import Resolver
from ..errors import ReauthRequired, TokenEndpointError
from ..secret import Secret
from ..store import Vault
from . import state as oauth_store
from .flow import TokenGrant, backoff_delay, token_request
from .token_endpoint import obtain_grant

POLL_SECONDS = 0.05
WAIT_LIMIT = oauth_store.LEASE_SECONDS + 10.0

_locks: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Vault, dict[str, asyncio.Lock]]
] = weakref.WeakKeyDictionary()


async def ensure_fresh(
    vault: Vault, name: str, *, audit: AuditLog | None = None, resolver: Resolver | None = None
) -> Secret | None:
    """The service's usable access token, refreshed first if it is due; None for a non-OAuth service.

    Raises ReauthRequired (a person must log in again) or TokenEndpointError (no valid token
    and the token endpoint cannot give one now). Cheap when nothing is due: one small query.
    With ``audit``, each call to the token endpoint made here is recorded with its outcome;
    ``resolver`` stands in for DNS when the token endpoint's name is checked and dialled.
    """
    record = oauth_store.load(vault, name)
    if record is None:
        return None
    if oauth_store.decide(record, time.time()) == "fresh":
        return _published(vault, name, record.access_fp)
    async with _lock(vault, name):
        return await _refresh(vault, name, None, audit, resolver)


async def refresh_after_rejection(
    vault: Vault,
    name: str,
    rejected_fingerprint: str,
    *,
    audit: AuditLog | None = None,
    resolver: Resolver | None = None,
) -> Secret | None:
    """The provider answered 401 to the token with this fingerprint: refresh once, unless someone
    already has (then the newer token is returned). None for a non-OAuth service."""
    if oauth_store.load(vault, name) is None:
        return None
    async with _lock(vault, name):
        return await _refresh(vault, name, rejected_fingerprint, audit, resolver)


async def _refresh(
    vault: Vault, name: str, rejected_fp: str | None, audit: AuditLog | None, resolver: Resolver | None
) -> Secret:
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        decision = oauth_store.claim(vault, name, owner, time.time(), rejected_fp)
        record = oauth_store.load(vault, name)
        assert record is not None  # claim() raised UnknownService otherwise
        match decision:
            case "fresh":
                return _published(vault, name, record.access_fp)
            case "reauth":
                raise ReauthRequired(name, record.reason or "there is no refresh token; this grant cannot refresh")
            case "backoff":
                return _still_valid(vault, name, record.expires_at, rejected_fp, record.reason, record.retry_at)
            case "wait":
                if time.monotonic() > deadline:
                    raise TokenEndpointError(
                        f"another process has been refreshing {name!r} for too long; try again shortly"
                    )
                await asyncio.sleep(POLL_SECONDS)
            case "claimed":
                try:
                    grant = await _request_token(vault, name, resolver)
                except ReauthRequired as exc:
                    if oauth_store.mark_dead(vault, name, exc.reason, record.access_fp):
                        _audit(audit, name, "reauth_required", exc.reason)
                        raise
                    oauth_store.release(vault, name, owner)
                    continue  # our lease had run out and another process saved a newer grant meanwhile
                except TokenEndpointError as exc:
                    retry_at = time.time() + backoff_delay(record.failures + 1)
                    oauth_store.mark_failure(vault, name, str(exc), retry_at)
                    _audit(audit, name, "error", str(exc))
                    return _still_valid(vault, name, record.expires_at, rejected_fp, str(exc), retry_at)
                except BaseException:
                    oauth_store.release(vault, name, owner)
                    raise
                oauth_store.save_refreshed(vault, name, grant)
                vault.set_secret(name, "credential", grant.access_token)
                _audit(audit, name, "refreshed", "rejected by the provider" if rejected_fp else "due")
                return vault.keyed(grant.access_token)


async def _request_token(vault: Vault, name: str, resolver: Resolver | None) -> TokenGrant:
    record = oauth_store.load(vault, name)
    assert record is not None
    secret = oauth_store.client_secret(vault, name)
    if record.config.grant == "client_credentials":
        request = token_request(record.config, secret, grant_type="client_credentials")
    else:
        refresh = oauth_store.refresh_token(vault, name)
        if refresh is None:
            raise ReauthRequired(name, "there is no refresh token")
        request = token_request(record.config, secret, grant_type="refresh_token", refresh_token=refresh.reveal())
    local = vault.snapshot().service(name).local
    return await obtain_grant(name, request, local=local, resolver=resolver)


def _still_valid(
    vault: Vault, name: str, expires_at: float | None, rejected_fp: str | None, reason: str, retry_at: float | None
) -> Secret:
    """During a token-endpoint outage, the current token while it lasts; after that, a clear error."""
    current = oauth_store.access_token(vault, name)
    usable = (
        current is not None and rejected_fp != current.fingerprint and (expires_at is None or expires_at > time.time())
    )
    if usable and current is not None:
        return _published(vault, name, current.fingerprint)
    wait = "" if retry_at is None else f" (next attempt in {max(0, round(retry_at - time.time()))} s)"
    raise TokenEndpointError(f"{reason}{wait}; the access token of {name!r} has expired meanwhile")


def _published(vault: Vault, name: str, access_fp: str) -> Secret:
    """The token as the proxy will inject it. If the service's credential lags behind the OAuth
    row (a crash between the two writes, or a slower process healing with an older read), the
    row wins and the credential is rewritten."""
    injected = vault.snapshot().secrets.get(name)
    if injected is not None and injected.fingerprint == access_fp:
        return injected
    current = oauth_store.access_token(vault, name)
    if current is None:
        raise TokenEndpointError(f"the OAuth service {name!r} has no access token; run: clavis-mcp oauth login {name}")
    vault.set_secret(name, "credential", current)
    return current


def _audit(audit: AuditLog | None, name: str, decision: str, reason: str) -> None:
    """One record per call to the token endpoint: never a token, only the outcome and why."""
    if audit is not None:
        audit.append(source="oauth", service=name, action="oauth-refresh", decision=decision, reason=reason)


def _lock(vault: Vault, name: str) -> asyncio.Lock:
    """One lock per event loop, open vault and service: concurrent requests in this process queue
    here instead of polling the database; other processes are kept in step by the lease."""
    per_vault = _locks.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    return per_vault.setdefault(vault, {}).setdefault(name, asyncio.Lock())
