"""Secret references: a service's secret field resolved at use time from where the user already
keeps it (``env://``, ``file://``, ``keyring://``, ``bao://``/``vault://``, ``op://``, ``bw://``,
``bws://``, ``pass://``/``gopass://``, ``aws-sm://``, ``gcp-sm://``).

One module per backend, each with ``resolve(ref) -> Secret`` and ``validate(ref)``; this module
picks it by scheme and keeps the values in a short-lived memory cache (:mod:`.cache`). The
stored form and the parsing are in :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ..secret import Secret
from . import aws, bitwarden, env, file, gcp, keychain, kv, onepassword, passwordstore
from .base import MARKER, SecretRef, stored, stored_ref
from .cache import RefCache

BACKENDS: dict[str, ModuleType] = {
    "env": env,
    "file": file,
    "keyring": keychain,
    "bao": kv,
    "vault": kv,
    "op": onepassword,
    "bw": bitwarden,
    "bws": bitwarden,
    "pass": passwordstore,
    "gopass": passwordstore,
    "aws-sm": aws,
    "gcp-sm": gcp,
}
SCHEMES = tuple(BACKENDS)

__all__ = ["MARKER", "SCHEMES", "SecretRef", "cache", "parse", "resolve_now", "stored", "stored_ref"]


def parse(text: str) -> SecretRef:
    """A reference checked by its backend's own rules (InvalidSecretRef says how to write it)."""
    from .base import parse as parse_any

    ref = parse_any(text, SCHEMES)
    validate: Callable[[SecretRef], None] = BACKENDS[ref.scheme].validate
    validate(ref)
    return ref


def resolve_now(ref: SecretRef) -> Secret:
    """Resolve without the cache (``doctor``)."""
    backend: Callable[[SecretRef], Secret] = BACKENDS[ref.scheme].resolve
    return backend(ref)


cache = RefCache(resolve_now)
