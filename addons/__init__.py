"""Our mitmproxy addons, one class per module, in the one order their hooks run."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vault import AuditLog, Vault

from .audit_trail import AuditTrail
from .client_auth import ClientAuth
from .destination import DestinationCheck
from .inject import InjectCredential
from .redact import RedactResponse


def default_addons(vault: Vault, audit: AuditLog, tokens: Callable[[], Mapping[str, str]]) -> list[object]:
    """Authenticate, decide, inject, then on the way back redact before the audit records."""
    return [
        ClientAuth(tokens),
        DestinationCheck(vault),
        InjectCredential(vault),
        RedactResponse(vault),
        AuditTrail(audit),
    ]


__all__ = ["AuditTrail", "ClientAuth", "DestinationCheck", "InjectCredential", "RedactResponse", "default_addons"]
