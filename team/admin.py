"""Admin endpoints' logic: services and their write-only secrets, users, keys, audit review.

Every change is audited with the admin who made it; no answer ever carries a secret back (a
key is shown once, at creation). Each change checks its caller's standing again right before it
is made (:func:`identity.hold_admin`): the route checked it when the headers came, and a login
can end while the body is still arriving.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from clavis_mcp.vault.errors import ApiRefused, DuplicateService, InvalidService, UnknownService
from clavis_mcp.vault.service import validate_secret

from . import audit as team_audit
from . import identity, oauth
from .budgets import parse_budget
from .identity import create_user
from .keys import NAME, Principal, create_key, list_keys, revoke_key
from .refs_guard import REFUSED, carries_ref
from .replica import Replica
from .storage import service_from_json

MAX_AUDIT = 1000


def _secret(body: dict[str, Any]) -> Any:
    value = body.get("secret")
    if carries_ref(value):
        raise ApiRefused(400, REFUSED)
    if not isinstance(value, str):
        raise ApiRefused(400, "'secret' must be the credential, as a string")
    try:
        return validate_secret(value)
    except InvalidService as exc:
        raise ApiRefused(400, str(exc)) from None


def _hold(replica: Replica, caller: Principal) -> None:
    """401 if the caller has lost its admin standing. Its own transaction, ahead of the service
    write: those writes wait on OpenBao, and a change of users must not wait on them."""
    with replica.conn.transaction():
        identity.hold_admin(replica.conn, caller)


def add_service(replica: Replica, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    definition = body.get("definition")
    if carries_ref(definition):
        raise ApiRefused(400, REFUSED)
    service = service_from_json(definition)
    assert isinstance(definition, dict)  # service_from_json refused anything else
    budget = parse_budget(definition)
    confirm = definition.get("confirm_writes", False)
    if not isinstance(confirm, bool):
        raise ApiRefused(400, "'confirm_writes' must be true or false")
    secret = _secret(body)
    _hold(replica, caller)
    try:
        replica.mirror.check_add(service, secret)
    except DuplicateService as exc:
        raise ApiRefused(409, str(exc)) from None
    try:
        extra: dict[str, Any] = {"budget": {"max_requests": budget[0], "period_seconds": budget[1]}} if budget else {}
        if confirm:  # team-only: the team client asks its user before a non-safe method (team_server.py)
            extra["confirm_writes"] = True
        replica.store.add(service, secret, extra or None)
    except BaseException:
        try:
            replica.mirror.vault.remove_service(service.name)
        except UnknownService:
            pass
        raise
    replica.audit.append(source=caller.name, service=service.name, action="add", decision="done")
    return {"name": service.name}


def rotate_secret(replica: Replica, caller: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
    secret = _secret(body)
    _hold(replica, caller)
    replica.store.rotate(name, secret)
    replica.audit.append(source=caller.name, service=name, action="rotate", decision="done")
    return {"name": name, "rotated": True}


def register_oauth(replica: Replica, caller: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
    _hold(replica, caller)
    oauth.register(replica, name, body)
    replica.audit.append(source=caller.name, service=name, action="oauth-register", decision="done")
    return {"name": name}


def remove_service(replica: Replica, caller: Principal, name: str) -> None:
    _hold(replica, caller)
    replica.store.remove(name)
    replica.audit.append(source=caller.name, service=name, action="remove", decision="done")


def add_user(replica: Replica, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
    email, password, role = body.get("email"), body.get("password"), body.get("role", "member")
    if not isinstance(email, str) or not isinstance(password, str) or not isinstance(role, str):
        raise ApiRefused(400, "give 'email', 'password' and 'role' (admin or member) as strings")
    create_user(replica.conn, email, password, role, by=caller)
    replica.audit.append(source=caller.name, action="user-add", decision="done", reason=f"{email.lower()} as {role}")
    return {"email": email.lower(), "role": role}


def users(replica: Replica) -> dict[str, Any]:
    return {"users": identity.list_users(replica.conn)}


def remove_user(replica: Replica, caller: Principal, email: str, args: Mapping[str, str]) -> dict[str, Any]:
    """Remove a user and revoke the API keys they made (``keep_keys=true``: keep them, listed); the
    admin users made with their logins are demoted, named in ``demoted_users`` (when there are any)."""
    keep = args.get("keep_keys", "false").lower()
    if keep not in ("true", "false"):
        raise ApiRefused(400, "'keep_keys' must be true or false")
    email, who = email.lower(), caller.name
    keys, demoted = identity.remove_user(replica.conn, email, keep_keys=keep == "true", by=caller)
    kept = f"; kept the keys they made: {', '.join(keys)}" if keep == "true" and keys else ""
    replica.audit.append(source=who, action="user-remove", decision="done", reason=email + kept)
    audit_demoted(replica, who, demoted, f"made with the logins of {email}, who was removed")
    extra = {"demoted_users": demoted} if demoted else {}
    if keep == "true":
        return {"email": email, "revoked_keys": [], "kept_keys": keys} | extra
    audit_revoked(replica, who, keys, f"made by {email}")
    return {"email": email, "revoked_keys": keys, "kept_keys": []} | extra


def audit_revoked(replica: Replica, who: str, keys: list[str], why: str) -> None:
    for name in keys:
        replica.audit.append(source=who, action="key-revoke", decision="done", reason=f"{name} ({why})")


def audit_demoted(replica: Replica, who: str, users: list[str], why: str) -> None:
    for email in users:
        replica.audit.append(source=who, action="user-role", decision="done", reason=f"{email} as member ({why})")


_CHANGES = {"role", "password", "sign_out"}


def change_user(replica: Replica, caller: Principal, email: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new role and/or password, or only a sign-out; each ends every login of the user, revokes
    the keys made with their authority, named in ``revoked_keys``, and demotes the admin users made
    with those logins, named in ``demoted_users`` (each present when there are any)."""
    role, password, sign_out = body.get("role"), body.get("password"), body.get("sign_out", False)
    unknown = sorted(set(body) - _CHANGES)
    if unknown:
        raise ApiRefused(400, f"unknown fields {', '.join(unknown)}: give 'role', 'password' or 'sign_out'")
    if role is not None and not isinstance(role, str):
        raise ApiRefused(400, "'role' must be admin or member")
    if password is not None and not isinstance(password, str):
        raise ApiRefused(400, "'password' must be a string")
    if not isinstance(sign_out, bool):
        raise ApiRefused(400, "'sign_out' must be true or false")
    if role is None and password is None and not sign_out:
        raise ApiRefused(400, "nothing to change: give 'role' (admin or member), 'password', or 'sign_out': true")
    email, who = email.lower(), caller.name
    role_now, revoked, demoted = identity.change_user(replica.conn, email, role, password, by=caller)
    done = [("user-role", f"{email} as {role}")] if role is not None else []
    done += [("user-password", email)] if password is not None else []
    for action, reason in done or [("user-sign-out", email)]:
        replica.audit.append(source=who, action=action, decision="done", reason=reason)
    audit_revoked(replica, who, revoked, f"made by {email}, whose logins ended")
    audit_demoted(replica, who, demoted, f"made with the logins of {email}, which ended")
    answer: dict[str, Any] = {"email": email, "role": role_now, "signed_out": True}
    answer |= {"revoked_keys": revoked} if revoked else {}
    return answer | {"demoted_users": demoted} if demoted else answer


def add_key(replica: Replica, maker: Principal, body: dict[str, Any]) -> dict[str, Any]:
    name, services = body.get("name"), body.get("services") or []
    role, expires = body.get("role", "member"), body.get("expires_in_seconds")
    if not isinstance(name, str) or not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ApiRefused(400, "give 'name' (a string) and 'services' (a list of service names)")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise ApiRefused(400, "'expires_in_seconds' must be an integer or null")
    unknown = sorted(s for s in services if not NAME.fullmatch(s))
    if unknown:
        raise ApiRefused(400, f"invalid service names: {', '.join(unknown)}")
    with replica.conn.transaction():
        identity.hold_admin(replica.conn, maker)
        key, expires_at = create_key(replica.conn, name, services, str(role), expires, created_by=maker.name)
    replica.audit.append(source=maker.name, action="key-create", decision="done", reason=name)
    return {
        "name": name,
        "key": key,
        "services": ["*"] if role == "admin" else sorted(set(services)),
        "expires_at": expires_at.isoformat() if expires_at else None,
        "created_by": maker.name,  # "user/...": it ends with that login (identity._revoke_made_by)
    }


def keys(replica: Replica) -> dict[str, Any]:
    return {"keys": list_keys(replica.conn)}


def revoke(replica: Replica, caller: Principal, name: str) -> None:
    with replica.conn.transaction():
        identity.hold_admin(replica.conn, caller)
        revoke_key(replica.conn, name)
    replica.audit.append(source=caller.name, action="key-revoke", decision="done", reason=name)


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ApiRefused(400, f"{name!r} must be an ISO 8601 time such as 2026-01-31T12:00:00+00:00") from None


def audit_records(replica: Replica, args: dict[str, str]) -> dict[str, Any]:
    try:
        limit = min(int(args.get("limit") or 100), MAX_AUDIT)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ApiRefused(400, f"'limit' must be a whole number from 1 to {MAX_AUDIT}")
    filters = {
        "service": args.get("service"),
        "agent": args.get("agent"),
        "decision": args.get("decision"),
        "since": _when(args.get("since"), "since"),
        "until": _when(args.get("until"), "until"),
    }
    return {"records": team_audit.query(replica.conn, filters, limit)}


def audit_verify(replica: Replica) -> dict[str, Any]:
    replica.audit.checkpoint()
    report = team_audit.verify(replica.conn, replica.bao, replica.names)
    report.pop("checked_at", None)
    return report
