"""Token exchange before injection: for auth methods that trade their stored key for a short-lived
token (a GitHub App's JWT for an installation token), get a fresh token before the request leaves.

The method does the exchange (single-flight, in the vault layer); this stage only calls it on
the proxy's loop, refuses the request (503, with the method's reason) when no token can be had,
and renews the flow's view of the vault so the injection and the redaction use the new token.
It runs after the OAuth refresh, right before the injection.

Each exchange the method makes is one audit record, ``action`` ``token-exchange``, ``decision``
``exchanged`` or ``failed`` (with the reason): never the token or the key. A request that waited
on another's exchange writes none.
"""

from __future__ import annotations

import asyncio

from mitmproxy import http

from clavis_mcp.vault import AuditLog, ClavisError, Vault
from clavis_mcp.vault.audit.log import EXCHANGE_FAILED as FAILED
from clavis_mcp.vault.audit.log import EXCHANGED
from clavis_mcp.vault.audit.log import TOKEN_EXCHANGE as ACTION
from clavis_mcp.vault.auth.fields import method_secrets, secret_refs
from clavis_mcp.vault.dialing import Resolver

from .flowmeta import CLIENT, SERVICE, flow_snapshot, is_settled, refuse, renew_flow_snapshot

# Per snapshot, by service: whether it has references to resolve and whether its method
# exchanges tokens (both fixed by the snapshot), so a service with neither costs one lookup.
WORK = "token-exchange:work"


class ExchangeToken:
    def __init__(self, vault: Vault, resolver: Resolver | None = None, audit: AuditLog | None = None) -> None:
        self._vault = vault
        self._resolver = resolver
        self._audit = audit

    def _record(self, flow: http.HTTPFlow, name: str, failure: str | None) -> None:
        """One record per exchange; a log that cannot take it raises, and the request is refused."""
        if self._audit is not None:
            self._audit.append(source=flow.metadata.get(CLIENT, "unauthenticated"), service=name, action=ACTION,
                               decision=EXCHANGED if failure is None else FAILED, reason=failure)  # fmt: skip

    async def request(self, flow: http.HTTPFlow) -> None:
        name = flow.metadata.get(SERVICE)
        if is_settled(flow) or name is None:
            return
        snapshot = flow_snapshot(flow, self._vault)
        work: dict[str, tuple[bool, bool]] = snapshot.derived(WORK, dict)
        if (needs := work.get(name)) is None:
            exchanges = bool(getattr(snapshot.service(name).auth, "exchanges_tokens", False))
            needs = work[name] = (bool(secret_refs(self._vault, snapshot, name)), exchanges)
        resolves, exchanges = needs
        if resolves:  # resolve off the loop (`op read` may take seconds)
            try:
                await asyncio.to_thread(method_secrets, self._vault, snapshot, name)
            except ClavisError as exc:
                refuse(flow, 503, f"service {name!r}: {exc}")
                return
        if not exchanges:
            return
        service = snapshot.service(name)
        try:
            changed = await service.auth.refresh(  # type: ignore[attr-defined]
                self._vault, name, method_secrets(self._vault, snapshot, name), local=service.local,
                resolver=self._resolver, on_exchange=lambda failure: self._record(flow, name, failure),
            )  # fmt: skip
        except ClavisError as exc:
            refuse(flow, 503, str(exc))
            return
        if changed:
            renew_flow_snapshot(flow)
