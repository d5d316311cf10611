"""Our mitmproxy addons, one class per module, in the one order their hooks run."""

from __future__ import annotations

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.proxy_config import ProxyConfig

from .approval import HoldForApproval
from .audit_trail import AuditTrail
from .budget import LocalBudget
from .client_auth import ClientAuth
from .destination import DestinationCheck
from .dial_guard import DialGuard
from .expiry import RefuseExpired
from .inject import InjectCredential
from .internal_headers import StripInternalHeaders
from .oauth_refresh import RefreshOAuthToken
from .pipeline import Pipeline
from .ratelimits import RecordRateLimits
from .redact import RedactResponse
from .request_policy import RequestPolicy
from .token_exchange import ExchangeToken


def default_addons(vault: Vault, audit: AuditLog, config: ProxyConfig) -> list[object]:
    """Authenticate, decide, check the dialled address, inject; on the way back drop headers that
    pose as ours, redact, note the rate limits, then audit (the audit record carries the
    redaction count). The proxy runs them in this order inside one :class:`Pipeline`.

    This is the one place a :class:`ProxyConfig` field is handed to the addon that reads it."""
    return [
        ClientAuth(config.tokens, vault),
        DestinationCheck(vault, config.passthrough, config.pass_other_hosts),
        DialGuard(vault, config.resolver),
        RequestPolicy(vault),
        LocalBudget(vault),
        RefuseExpired(vault),
        HoldForApproval(vault, config.approvals),
        RefreshOAuthToken(vault, audit, config.resolver),
        ExchangeToken(vault, config.resolver, audit),
        InjectCredential(vault),
        StripInternalHeaders(),
        RedactResponse(vault, config.max_decoded),
        RecordRateLimits(vault),
        AuditTrail(audit, config.on_recorded, config.tokens, vault),
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
