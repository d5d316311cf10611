"""The redactors of one service: what must never come back from a request that carried its credential.

The injected value, the header value built from it (a basic-auth pair is a secret of its own
once base64-encoded), and an OAuth service's refresh token and client secret. Both readers of
responses use them: the proxy on the bytes it relays, and call_service again on what the model
will finally read, after parsing (SECURITY-CASES principle 39).

Building one compiles a scanner, so each is kept until what went into it changes: it is keyed
by the fingerprints of every value in it, so a refresh that rotates only the refresh token, or a
new basic-auth user name, rebuilds it as surely as a new credential does. Those values are read
once per vault snapshot (every table they come from makes a new snapshot when it changes), so a
response costs one lookup, and the redactors built from them are kept with the snapshot. A
service with a field kept as a secret reference (``vault/refs``) is read on every response
instead, from the references' memory cache and without resolving again (a response is never
left unredacted because a backend went away meanwhile): the values this process injected, the
one before the last resolution included (a rotation at the source while a request was in flight).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from ..auth.fields import method_secrets, secret_refs, stored_secrets
from ..oauth.state import ensure_schema, other_secrets
from ..refs import cache as ref_cache
from ..secret import Secret
from ..store import Snapshot, Vault
from .redactor import Redactor


class ServiceRedactor(NamedTuple):
    values: Redactor  # every spelling of the secrets in play
    # The same secrets in lower case, for header names (an HTTP/2 hop lower-cases them): every form
    # of ``values`` lower-cased among them, so one scan of a lower-cased header block finds both's.
    names: Redactor


class InPlay(NamedTuple):
    """What a response to a request with the service's credential must not carry, and its key."""

    key: tuple[str, ...]  # the vault's fingerprint of each value below, in order
    secrets: tuple[Secret, ...]
    derived: tuple[str, ...]


def in_play(vault: Vault, snapshot: Snapshot, name: str) -> InPlay:
    service = snapshot.service(name)
    fields, earlier = _fields(vault, snapshot, name)  # every secret field of the method
    secrets = (*fields.values(), *earlier, *other_secrets(vault, service))
    try:
        derived = tuple(service.auth.redaction_values(fields))
    except KeyError:  # a reference never resolved here: nothing was injected from it
        derived = ()
    values: tuple[Secret | str, ...] = (*secrets, *derived)
    return InPlay(tuple(vault.keyed(value).fingerprint for value in values), secrets, derived)


def _fields(vault: Vault, snapshot: Snapshot, name: str) -> tuple[dict[str, Secret], list[Secret]]:
    """The fields as injected, and the earlier values of those kept as references."""
    refs = secret_refs(vault, snapshot, name)
    if not refs:
        return method_secrets(vault, snapshot, name), []
    fields = {field: value for field, value in stored_secrets(vault, snapshot, name).items() if field not in refs}
    earlier: list[Secret] = []
    for field, ref in refs.items():
        known = ref_cache.known(ref)
        if known:
            fields[field] = known[0]
            earlier += known[1:]
    return fields, earlier


def _build(name: str, values: InPlay) -> ServiceRedactor:
    lowered = [value.lower() for value in (*(s.reveal() for s in values.secrets), *values.derived)]
    names = Redactor(name, values.secrets, (*values.derived, *lowered), lower_case=True)
    return ServiceRedactor(Redactor(name, values.secrets, values.derived), names)


class ServiceRedactors:
    def __init__(self, vault: Vault) -> None:
        ensure_schema(vault)  # before any response: OAuth services stored by older versions become oauth2
        self._vault = vault
        self._cache: dict[str, tuple[tuple[str, ...], ServiceRedactor]] = {}
        self._lock = threading.Lock()

    def for_service(self, snapshot: Snapshot, name: str) -> ServiceRedactor:
        """The redactors for ``name``'s secrets as ``snapshot`` holds them (rebuilt when any changes).

        Kept with the snapshot too, which every reader of the vault in this process shares: the
        proxy and call_service's second look find one redactor per snapshot, built once. A service
        with a secret reference is kept as None (whether it has one is the snapshot's, too): its
        values are read again on every response. (One table by name per snapshot: a key made and a
        closure built for each lookup cost more than the lookup, twice a response.)"""
        by_name: dict[str, ServiceRedactor | None] = snapshot.derived("redactors", dict)
        try:
            kept = by_name[name]
        except KeyError:
            kept = by_name[name] = self._kept(snapshot, name)
        return kept if kept is not None else self._redactors(name, in_play(self._vault, snapshot, name))

    def _kept(self, snapshot: Snapshot, name: str) -> ServiceRedactor | None:
        if secret_refs(self._vault, snapshot, name):
            return None
        return self._redactors(name, in_play(self._vault, snapshot, name))

    def _redactors(self, name: str, values: InPlay) -> ServiceRedactor:
        """The redactors for ``values``: those built for the same values (in an earlier snapshot), else new ones."""
        cached = self._cache.get(name)
        if cached is not None and cached[0] == values.key:
            return cached[1]
        redactor = _build(name, values)
        with self._lock:
            self._cache[name] = (values.key, redactor)
        return redactor
