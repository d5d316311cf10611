"""Our mitmproxy addons, one class per module, in the one order their hooks run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from clavis_mcp.vault import AuditLog, HostRule, Vault

from .audit_trail import AuditTrail
from .budget import LocalBudget
from .client_auth import ClientAuth
from .destination import DestinationCheck
from .dial_guard import DialGuard, Resolver
from .inject import InjectCredential
from .internal_headers import StripInternalHeaders
from .oauth_refresh import RefreshOAuthToken
from .pipeline import Pipeline
from .ratelimits import RecordRateLimits
from .redact import RedactResponse
from .request_policy import RequestPolicy


def default_addons(
    vault: Vault,
    audit: AuditLog,
    tokens: Callable[[], Mapping[str, str]],
    *,
    passthrough: Sequence[HostRule] = (),
    resolver: Resolver | None = None,
) -> list[object]:
    """Authenticate, decide, check the dialled address, inject; on the way back drop headers that
    pose as ours, redact, note the rate limits, then audit (the audit record carries the
    redaction count). The proxy runs them in this order inside one :class:`Pipeline`."""
    return [
        ClientAuth(tokens),
        DestinationCheck(vault, passthrough),
        DialGuard(vault, resolver),
        RequestPolicy(vault),
        LocalBudget(vault),
        RefreshOAuthToken(vault, audit, resolver),
        InjectCredential(vault),
        StripInternalHeaders(),
        RedactResponse(vault),
        RecordRateLimits(vault),
        AuditTrail(audit),
    ]


__all__ = [
    "AuditTrail",
    "ClientAuth",
    "DestinationCheck",
    "DialGuard",
    "InjectCredential",
    "Pipeline",
    "RecordRateLimits",
    "RedactResponse",
    "RequestPolicy",
    "StripInternalHeaders",
    "default_addons",
]
