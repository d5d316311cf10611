"""OAuth clients and tokens in the vault: one record per service (kind ``oauth``, bound to it).

The client secret, refresh token and access token are sealed with the vault key and bound
to their service and field (context ``oauth:SERVICE:FIELD``), so a ciphertext moved to
another row fails to open. The current access token is also the service's ``credential``
secret, which is what the proxy injects: every holder of the vault sees a refresh as soon
as it commits. The row also carries the refresh lease that makes one process, and only
one, call the token endpoint when a token is due (see :mod:`vault.oauth_refresh`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ..auth import HeaderAuth, OAuth2Auth
from ..errors import StoreConflict, UnknownService, VaultCorrupted
from ..secret import Secret
from ..service import Service
from ..storage.protocol import Batch, Record, Value
from ..store import Snapshot, Vault
from .flow import OAuthConfig, TokenGrant, needs_refresh

KIND = "oauth"  # records (kind, service), bound to the service; fields below
LEASE_SECONDS = 20.0  # longer than a token request may take (its timeout is 8 s)
ACTIVE, REAUTH = "active", "reauth_required"
# A record's fields: config (JSON text), client_secret, refresh_token, access_token (sealed, the
# first two may be None), access_fp, expires_at, state, reason, failures, retry_at, lease_owner,
# lease_until, refreshed_at, refreshes.

Decision = Literal["fresh", "claimed", "wait", "reauth", "backoff"]
OAuthState = Literal["expired", "reauth_required", "unknown"]


@dataclass(frozen=True, slots=True)
class OAuthRecord:
    """The non-secret state of one OAuth service: what status reports and refresh decides on."""

    service: str
    config: OAuthConfig
    has_refresh_token: bool
    access_fp: str
    expires_at: float | None
    state: str
    reason: str
    failures: int
    retry_at: float | None
    lease_owner: str | None
    lease_until: float | None
    refreshed_at: float
    refreshes: int

    def can_refresh(self) -> bool:
        return self.config.grant == "client_credentials" or self.has_refresh_token


def decide(record: OAuthRecord, now: float, rejected_fp: str | None = None) -> Decision:
    """Whether a caller may use the current token, must wait for another refresher, or refreshes.

    ``rejected_fp`` is the fingerprint of a token the provider just answered 401 to: if the
    current token is another one, somebody already refreshed and the caller uses it.
    """
    if record.state == REAUTH:
        return "reauth"
    if rejected_fp is None:
        if not needs_refresh(record.expires_at, now):
            return "fresh"
    elif record.access_fp != rejected_fp:
        return "fresh"
    if not record.can_refresh():
        return "reauth"
    if record.retry_at is not None and record.retry_at > now:
        return "backoff"
    if record.lease_until is not None and record.lease_until > now:
        return "wait"
    return "claimed"


def ensure_schema(vault: Vault) -> None:
    """Once per process and vault, the upgrades of what older versions wrote.

    The proxy's and the MCP server's readers of OAuth state call it when they are built, before
    any request, so they never see a service stored before OAuth was its auth method."""
    if vault not in _fingerprints_keyed:
        _fingerprints_keyed.add(vault)
        _key_old_fingerprints(vault)
        _upgrade_to_oauth2_method(vault)


def is_oauth(service: Service) -> bool:
    """Whether the service's credential is an OAuth access token (refreshed, with more secrets)."""
    return isinstance(service.auth, OAuth2Auth)


def _upgrade_to_oauth2_method(vault: Vault) -> None:
    """A service registered before OAuth was an auth method is stored as a bearer header with a
    row in this table: make its method ``oauth2`` (same header, same bytes on the wire), so that
    whether a service is OAuth is a property of the service, not a question to this table."""
    for name in _names(vault):
        service = vault.get_service(name)
        if not is_oauth(service):
            record = load(vault, name)
            grant = record.config.grant if record is not None else "refresh_token"
            vault.update_service(replace(service, auth=as_oauth2(service, grant)))


def as_oauth2(service: Service, grant: str) -> OAuth2Auth:
    """The service's bearer header as the OAuth method (keeping its header, template and fixed headers)."""
    auth = service.auth
    if isinstance(auth, HeaderAuth):
        return OAuth2Auth(name=auth.name, template=auth.template, extra_headers=auth.extra_headers, grant=grant)
    return OAuth2Auth(extra_headers=auth.extra_headers, grant=grant)


def _key_old_fingerprints(vault: Vault) -> None:
    """Replace, once per process, every ``access_fp`` that is not the vault's own fingerprint of the
    token: an unkeyed ``sha256:`` one from before fingerprints were keyed (an offline oracle for the
    token), or one keyed with another vault's key (written by a process that had opened another
    vault since). Neither equals the injected credential's, so every request would rewrite the
    credential, and a 401 reported by a process keyed right would never be refreshed."""
    with vault.store.read() as batch:
        records = batch.records(KIND)
    for record in records:
        token = _unseal(vault, record, "access_token")
        if token is not None and token.fingerprint != record.fields.get("access_fp"):
            fields = {**record.fields, "access_fp": token.fingerprint}
            try:  # only over the record as read: a refresh meanwhile wrote a right one
                with vault.store.atomic() as batch:
                    batch.put(KIND, record.key, fields, service=record.key, expect=record.version)
            except StoreConflict:
                pass


_fingerprints_keyed: weakref.WeakSet[Vault] = weakref.WeakSet()


def load(vault: Vault, name: str) -> OAuthRecord | None:
    """The service's OAuth state, or None when it is not an OAuth service."""
    ensure_schema(vault)
    with vault.store.read() as batch:
        record = batch.get(KIND, name)
    return None if record is None else _record(record)


def oauth_services(vault: Vault) -> list[str]:
    ensure_schema(vault)
    return _names(vault)


def _names(vault: Vault) -> list[str]:
    with vault.store.read() as batch:
        return [r.key for r in batch.records(KIND)]


def oauth_services_as_of(snapshot: Snapshot) -> frozenset[str]:
    """The OAuth services in ``snapshot``, so the proxy asks the vault about a service's OAuth
    state only for the services that have one."""
    return snapshot.derived("oauth2", lambda: frozenset(s.name for s in snapshot.services if is_oauth(s)))


def register(
    vault: Vault, service: Service, config: OAuthConfig, client_secret: Secret | None, grant: TokenGrant
) -> None:
    """Add the service with its first token. If the OAuth record cannot be written, the service goes too."""
    ensure_schema(vault)
    service = replace(service, auth=as_oauth2(service, config.grant))
    vault.add_service(service, grant.access_token)
    name = service.name
    try:
        sealed = None if client_secret is None else _seal(vault, name, "client_secret", client_secret)
        fields: dict[str, Value] = {
            "config": config.to_json(),
            "client_secret": sealed,
            "refresh_token": None,
            "failures": 0,
            "refreshes": 0,
        }
        with vault.store.atomic() as batch:
            batch.put(KIND, name, _with_grant(vault, name, fields, grant), service=name, expect=0)
    except BaseException:
        vault.remove_service(service.name)
        raise


def replace_grant(vault: Vault, name: str, grant: TokenGrant, client_secret: Secret | None = None) -> None:
    """After a new login: the new tokens (and client secret, if given) replace the old; state is active."""

    def change(fields: dict[str, Value]) -> bool:
        if client_secret is not None:
            fields["client_secret"] = _seal(vault, name, "client_secret", client_secret)
        fields["refresh_token"] = None
        fields.update(_with_grant(vault, name, fields, grant))
        return True

    with vault.store.atomic() as batch:
        _update(batch, name, change)
        vault.set_secret(name, "credential", grant.access_token)


def claim(vault: Vault, name: str, owner: str, now: float, rejected_fp: str | None = None) -> Decision:
    """Decide under the vault's write lock, and take the refresh lease when the decision is ours."""
    decision: list[Decision] = []

    def change(fields: dict[str, Value]) -> bool:
        decision.append(decide(_record(Record(KIND, name, fields, 0)), now, rejected_fp))
        if decision[0] != "claimed":
            return False
        fields.update(lease_owner=owner, lease_until=now + LEASE_SECONDS)
        return True

    with vault.store.atomic() as batch:
        _update(batch, name, change)
    return decision[0]


def save_refreshed(vault: Vault, name: str, grant: TokenGrant) -> None:
    """Persist a refresh in one transaction: a rotated refresh token is stored together with the
    access token it came with, before anyone can use that access token."""

    def change(fields: dict[str, Value]) -> bool:
        fields.update(_with_grant(vault, name, fields, grant))
        fields["refreshes"] = _int(fields.get("refreshes")) + 1
        return True

    with vault.store.atomic() as batch:
        _update(batch, name, change)


def mark_dead(vault: Vault, name: str, reason: str, seen_access_fp: str) -> bool:
    """The grant was refused: stop refreshing (no retry storm) until someone logs in again.

    Only if the record still holds the grant the refused request was made from: a refresher
    whose lease ran out may have lost a rotation race to one that has already saved a newer
    grant, and that grant is alive. Returns whether the service was marked.
    """

    def change(fields: dict[str, Value]) -> bool:
        if fields.get("access_fp") != seen_access_fp:
            return False
        fields.update(state=REAUTH, reason=reason, lease_owner=None, lease_until=None)
        return True

    with vault.store.atomic() as batch:
        return _update(batch, name, change, missing_ok=True)


def mark_failure(vault: Vault, name: str, reason: str, retry_at: float) -> None:
    def change(fields: dict[str, Value]) -> bool:
        fields.update(failures=_int(fields.get("failures")) + 1, reason=reason, retry_at=retry_at)
        fields.update(lease_owner=None, lease_until=None)
        return True

    with vault.store.atomic() as batch:
        _update(batch, name, change, missing_ok=True)


def release(vault: Vault, name: str, owner: str) -> None:
    def change(fields: dict[str, Value]) -> bool:
        if fields.get("lease_owner") != owner:
            return False
        fields.update(lease_owner=None, lease_until=None)
        return True

    with vault.store.atomic() as batch:
        _update(batch, name, change, missing_ok=True)


def client_secret(vault: Vault, name: str) -> Secret | None:
    return _open_field(vault, name, "client_secret")


def refresh_token(vault: Vault, name: str) -> Secret | None:
    return _open_field(vault, name, "refresh_token")


def access_token(vault: Vault, name: str) -> Secret | None:
    return _open_field(vault, name, "access_token")


# -- internals ---------------------------------------------------------------------------------


def _with_grant(vault: Vault, name: str, fields: dict[str, Value], grant: TokenGrant) -> dict[str, Value]:
    """``fields`` with ``grant``'s tokens in (a refresh token only if the grant has one): active again."""
    fields = dict(fields)
    if grant.refresh_token is not None:
        fields["refresh_token"] = _seal(vault, name, "refresh_token", grant.refresh_token)
    fields.update(
        access_token=_seal(vault, name, "access_token", grant.access_token),
        access_fp=vault.keyed(grant.access_token).fingerprint,  # the provider's token was made outside this vault
        expires_at=grant.expires_at,
        state=ACTIVE,
        reason="",
        failures=0,
        retry_at=None,
        lease_owner=None,
        lease_until=None,
        refreshed_at=time.time(),
    )
    return fields


def _update(batch: Batch, name: str, change: Callable[[dict[str, Value]], bool], *, missing_ok: bool = False) -> bool:
    """Read the service's record, let ``change`` edit its fields, write it back if it says so
    (all in the caller's batch); UnknownService if there is none, unless ``missing_ok``."""
    record = batch.get(KIND, name)
    if record is None:
        if missing_ok:
            return False
        raise UnknownService(name, [r.key for r in batch.records(KIND)])
    _record(record)  # refuse a damaged record before writing over it
    fields = dict(record.fields)
    if not change(fields):
        return False
    batch.put(KIND, name, fields, service=name, expect=record.version)
    return True


def _int(value: Value) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _record(record: Record) -> OAuthRecord:
    f = record.fields
    try:
        expires, retry, owner, until = (
            f.get("expires_at"),
            f.get("retry_at"),
            f.get("lease_owner"),
            f.get("lease_until"),
        )
        return OAuthRecord(
            service=record.key,
            config=OAuthConfig.from_json(str(f["config"])),
            has_refresh_token=f.get("refresh_token") is not None,
            access_fp=str(f["access_fp"]),
            expires_at=None if expires is None else float(expires),
            state=str(f["state"]),
            reason=str(f.get("reason", "")),
            failures=_int(f.get("failures")),
            retry_at=None if retry is None else float(retry),
            lease_owner=None if owner is None else str(owner),
            lease_until=None if until is None else float(until),
            refreshed_at=float(f["refreshed_at"]),  # type: ignore[arg-type]
            refreshes=_int(f.get("refreshes")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VaultCorrupted(
            f"the OAuth settings of {record.key!r} are damaged ({type(exc).__name__}); "
            "remove the service and add it again"
        ) from None


def _seal(vault: Vault, name: str, field: str, secret: Secret) -> bytes:
    return vault.seal(secret.reveal().encode("utf-8"), f"oauth:{name}:{field}")


def _open_field(vault: Vault, name: str, field: str) -> Secret | None:
    ensure_schema(vault)
    with vault.store.read() as batch:
        record = batch.get(KIND, name)
        if record is None:
            raise UnknownService(name, [r.key for r in batch.records(KIND)])
    return _unseal(vault, record, field)


def _unseal(vault: Vault, record: Record, field: str) -> Secret | None:
    blob = record.fields.get(field)
    if blob is None:
        return None
    what = f"the OAuth {field.replace('_', ' ')} of {record.key!r}"
    if not isinstance(blob, bytes):
        raise VaultCorrupted(f"{what} is damaged; remove the service and add it again")
    plain = vault.unseal(blob, f"oauth:{record.key}:{field}", what)
    return vault.keyed(plain.decode("utf-8"))


def credential_state(vault: Vault, name: str, now: float | None = None) -> tuple[OAuthState, str] | None:
    """(state, detail) of an OAuth service for check_credential_status; None for other services.

    An access token that is due is not "expired" while it can be refreshed: the next use
    refreshes it. States are the MCP front end's: valid needs a live check, so a healthy
    token is "unknown" here and the detail says when it expires and that it refreshes itself.
    """
    record = load(vault, name)
    if record is None:
        return None
    now = time.time() if now is None else now
    login = f"clavis-mcp oauth login {name}"
    if record.state == REAUTH:
        return "reauth_required", f"the provider refused the grant ({record.reason}); log in again with: {login}"
    expired = record.expires_at is not None and record.expires_at <= now
    if not record.can_refresh():
        if expired:
            return "expired", f"the access token has expired and there is no refresh token; run: {login}"
        return "unknown", "OAuth access token without a refresh token; when it stops working, run: " + login
    if record.retry_at is not None and record.retry_at > now:
        state: OAuthState = "expired" if expired else "unknown"
        return state, f"the token endpoint is failing ({record.reason}); retrying after {record.retry_at - now:.0f} s"
    until = "no expiry" if record.expires_at is None else f"expires in {record.expires_at - now:.0f} s"
    return "unknown", f"OAuth access token ({until}); refreshed automatically before it expires or on a 401"


def other_secrets(vault: Vault, service: Service) -> list[Secret]:
    """The secret fields of the service's method kept here (an OAuth service's refresh token and
    client secret), for response redaction; [] for a method with none, without asking the table."""
    readers = [_FIELDS[field] for field in service.auth.secret_fields() if field in _FIELDS]
    if not readers or load(vault, service.name) is None:
        return []
    return [s for s in (read(vault, service.name) for read in readers) if s is not None]


_FIELDS = {"refresh_token": refresh_token, "client_secret": client_secret}


def describe_auth(vault: Vault, service: Service) -> str:
    """How the service authenticates, as its method says once this vault's services are upgraded
    (a service stored before OAuth was an auth method reads as ``oauth2`` from the first call)."""
    ensure_schema(vault)
    return vault.snapshot().service(service.name).auth.describe()
