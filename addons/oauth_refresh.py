"""OAuth token freshness at egress: refresh a due token before injection, and after a 401.

Runs after the destination is decided and before InjectCredential, which injects the vault's
current credential: for an OAuth service that is the access token this addon just made sure
of. The refresh itself (single flight across processes, backoff, reauth) is the vault's
(:mod:`vault.oauth_refresh`); the token endpoint's answer never passes through the proxy.

A 401 from the provider refreshes the token once so that the next request carries the new
one; the failed request is not replayed (a replayed POST could act twice).
"""

from __future__ import annotations

import logging

from mitmproxy import http

from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.dialing import Resolver
from clavis_mcp.vault.errors import ClavisError, ReauthRequired
from clavis_mcp.vault.oauth.refresh import ensure_fresh, refresh_after_rejection
from clavis_mcp.vault.oauth.state import ensure_schema, oauth_services_as_of

from .flowmeta import DECISION, SERVICE, flow_snapshot, is_settled, refuse, renew_flow_snapshot

TOKEN = "clavis.oauth_token"  # fingerprint of the access token this flow was given
logger = logging.getLogger(__name__)


class RefreshOAuthToken:
    def __init__(self, vault: Vault, audit: AuditLog | None = None, resolver: Resolver | None = None) -> None:
        ensure_schema(vault)  # before any flow: OAuth services stored by older versions become oauth2
        self._vault = vault
        self._audit = audit
        self._resolver = resolver

    async def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        if name not in oauth_services_as_of(flow_snapshot(flow, self._vault)):
            return
        try:
            token = await ensure_fresh(self._vault, name, audit=self._audit, resolver=self._resolver)
        except ReauthRequired as exc:
            refuse(flow, 401, str(exc))
            return
        except ClavisError as exc:  # token endpoint trouble, or the audit log cannot record it
            refuse(flow, 503, str(exc))
            return
        if token is not None:
            flow.metadata[TOKEN] = token.fingerprint
            if flow_snapshot(flow, self._vault).secrets.get(name) != token:
                renew_flow_snapshot(flow)

    async def response(self, flow: http.HTTPFlow) -> None:
        rejected = flow.metadata.get(TOKEN)
        if rejected is None or flow.response is None or flow.response.status_code != 401:
            return
        if flow.metadata.get(DECISION) != "injected":
            return
        try:
            await refresh_after_rejection(
                self._vault, flow.metadata[SERVICE], rejected, audit=self._audit, resolver=self._resolver
            )
        except ClavisError as exc:
            logger.warning("OAuth refresh after a 401 failed: %s", exc)
