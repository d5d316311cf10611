"""Several named secret fields per service: templates that name them, and reading them for a request.

A template names a field as ``{name}`` (``{secret}`` is the ``credential`` field every service
has), so ``X-App-Id: {app_id}`` or ``{username}:{secret}`` says which stored secret goes where.
The proxy reads a service's fields once per vault snapshot (:func:`method_secrets`), since every
write to a secret makes a new snapshot. A field that holds a secret reference (``op://...``,
:mod:`vault.refs`) is resolved on every read through the references' short-lived cache instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import InvalidService, UnknownService
from ..refs import SecretRef, cache, parse, stored_ref
from ..secret import Secret
from .base import CONTROL, CREDENTIAL, PLACEHOLDER

if TYPE_CHECKING:  # the store imports the services, which import the auth methods
    from ..store import Snapshot, Vault

FIELD = re.compile(r"\{([a-z][a-z0-9_]{0,31})\}")
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BRACES = re.compile(r"[{}]")


def field_name(placeholder: str) -> str:
    """``secret`` is the credential; any other name is a field of its own."""
    return CREDENTIAL if placeholder == "secret" else placeholder


def template_fields(template: str) -> tuple[str, ...]:
    """The fields a template names, in order of first use; raise InvalidService if it names none,
    names a field badly (``{X}``, ``{a b}``) or holds control characters."""
    if CONTROL.search(template):
        raise InvalidService("a template must not contain control characters (CR, LF, ...)")
    names = FIELD.findall(template)
    if BRACES.search(FIELD.sub("", template)):
        raise InvalidService(f"template {template!r} has a brace that is not a {{field}} (a-z, 0-9, _)")
    if not names:
        raise InvalidService(f"template {template!r} names no secret field such as {PLACEHOLDER} or {{app_id}}")
    return tuple(dict.fromkeys(field_name(name) for name in names))


def fill(template: str, secrets: Mapping[str, Secret]) -> str:
    """The template with each ``{field}`` replaced by the field's value (one pass: a value that
    looks like a placeholder is not expanded again)."""
    return FIELD.sub(lambda match: secrets[field_name(match.group(1))].reveal(), template)


def validate_field_name(name: str) -> str:
    if not FIELD_NAME.fullmatch(name):
        raise InvalidService(f"secret field {name!r} must be 1-32 characters of a-z, 0-9 and _, starting with a letter")
    return name


def method_secrets(vault: Vault, snapshot: Snapshot, name: str) -> dict[str, Secret]:
    """Every secret field the service's method uses that is stored, as ``snapshot`` sees the vault
    (read once per snapshot). A field that is not stored is absent: the method decides whether it
    was optional (a session token) or the service cannot be used. A field kept as a reference is
    its resolved value (SecretRefUnresolved when it cannot be had: never the reference itself)."""
    fields = stored_secrets(vault, snapshot, name)
    refs = secret_refs(vault, snapshot, name)
    if not refs:
        return fields
    return {**fields, **{field: cache.get(ref) for field, ref in refs.items()}}


def secret_refs(vault: Vault, snapshot: Snapshot, name: str) -> dict[str, SecretRef]:
    """The service's fields kept as references, and each reference (not secret: shown, audited)."""

    def read() -> dict[str, SecretRef]:
        found = {field: stored_ref(value) for field, value in stored_secrets(vault, snapshot, name).items()}
        return {field: parse(text) for field, text in found.items() if text is not None}

    return snapshot.derived(f"auth-refs:{name}", read)


def stored_secrets(vault: Vault, snapshot: Snapshot, name: str) -> dict[str, Secret]:
    """:func:`method_secrets` as stored: a reference field holds its stored form (``refs.stored``)."""

    def read() -> dict[str, Secret]:
        fields = {CREDENTIAL: snapshot.secrets[name]}
        for field in snapshot.service(name).auth.secret_fields():
            if field not in fields:
                try:
                    fields[field] = vault.secret(name, field)
                except UnknownService:
                    continue
        return fields

    return snapshot.derived(f"auth-fields:{name}", read)


def require(secrets: Mapping[str, Secret], fields: tuple[str, ...], what: str) -> None:
    """Refuse to inject when a field the method needs is not stored (a half-registered service)."""
    missing = [field for field in fields if field not in secrets]
    if missing:
        raise InvalidService(f"{what} needs the secret field(s) {', '.join(missing)}, which are not stored")


def credential(vault: Vault, name: str) -> Secret:
    """The credential of ``name`` as the proxy would inject it (a reference resolved), for the
    readers outside the proxy (the MCP tools)."""
    return method_secrets(vault, vault.snapshot(), name)[CREDENTIAL]
