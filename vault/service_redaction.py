"""The redactors of one service: what must never come back from a request that carried its credential.

The injected value, the header value built from it (a basic-auth pair is a secret of its own
once base64-encoded), and an OAuth service's refresh token and client secret. Both readers of
responses use them: the proxy on the bytes it relays, and call_service again on what the model
will finally read, after parsing (SECURITY-CASES principle 39). Building one compiles a
scanner, so each is built once per version of the service's secret.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from .oauth_store import other_secrets
from .redaction import Redactor
from .store import Snapshot, Vault


class ServiceRedactor(NamedTuple):
    values: Redactor  # every spelling of the secrets in play
    names: Redactor  # the same secrets in lower case, for header names (an HTTP/2 hop lower-cases them)


class ServiceRedactors:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: dict[str, tuple[str, ServiceRedactor]] = {}
        self._lock = threading.Lock()

    def for_service(self, snapshot: Snapshot, name: str) -> ServiceRedactor:
        """The redactors for ``name``'s secret as ``snapshot`` holds it (rebuilt after a rotation)."""
        secret = snapshot.secrets[name]
        cached = self._cache.get(name)
        if cached is not None and cached[0] == secret.fingerprint:
            return cached[1]
        service = snapshot.service(name)
        secrets = [secret, *other_secrets(self._vault, name)]
        derived = [service.auth.header_value(secret)] if service.auth.header_name else []
        lowered = [value.lower() for value in (*(s.reveal() for s in secrets), *derived)]
        redactor = ServiceRedactor(Redactor(name, secrets, derived), Redactor(name, (), lowered))
        with self._lock:
            self._cache[name] = (secret.fingerprint, redactor)
        return redactor
