"""Expired credentials: a stored key past its expiry is never sent.

get_credentials refuses such a key; the proxy must not inject it either, whichever client asks
(call_service or an HTTPS_PROXY agent): one rule, :func:`is_past_expiry`. An OAuth access token
is not judged here: the refresh stage renews it before injection.
"""

from __future__ import annotations

import time

from mitmproxy import http

from clavis_mcp.vault import Service, Vault
from clavis_mcp.vault.oauth.state import is_oauth

from .flowmeta import SERVICE, flow_snapshot, is_settled, refuse


def is_past_expiry(service: Service, now: float) -> bool:
    return service.expires_at is not None and service.expires_at <= now and not is_oauth(service)


class RefuseExpired:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        if is_past_expiry(flow_snapshot(flow, self._vault).service(name), time.time()):
            refuse(flow, 403, f"the credential of {name!r} has expired; rotate it with: clavis-mcp rotate {name}")
