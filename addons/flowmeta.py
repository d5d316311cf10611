"""How our addons talk to each other: namespaced ``flow.metadata`` keys, and refusals.

Refusals are mitmproxy responses made by the proxy itself, with a plain-text reason an agent
can read and a header that says which addon refused and why.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

from mitmproxy import http

from clavis_mcp.vault import Snapshot, Vault
from clavis_mcp.vault.agents import AgentTokens
from clavis_mcp.vault.proxy_config import Tokens
from clavis_mcp.vault.proxy_headers import INTERNAL_PREFIX, REFUSED_HEADER, SELECT_HEADER

__all__ = ["INTERNAL_PREFIX", "REFUSED_HEADER", "SELECT_HEADER"]  # re-exported: the addons' vocabulary

CLIENT = "clavis.client"  # name of the authenticated proxy client (agent)
SERVICE = "clavis.service"  # name of the service whose credential goes on this flow
DECISION = "clavis.decision"  # refused / injected / passed
REASON = "clavis.reason"  # why, in words an agent can act on (no secret)
REDACTIONS = "clavis.redactions"  # count of secrets scrubbed from the response
STARTED = "clavis.started"  # monotonic time the request arrived
DESTINATION = "clavis.destination"  # canonical (scheme, host, port) the decision was taken on

# Not in flow.metadata: a snapshot holds decrypted secrets, and metadata is what flows serialise.
_snapshots: weakref.WeakKeyDictionary[http.HTTPFlow, Snapshot] = weakref.WeakKeyDictionary()
# The flow asked about last and its view, as in _snapshots: a request's stages ask one after
# another (about ten times a request), and checking one weak reference costs less than a lookup
# in _snapshots, which makes a weak reference of the flow every time. Weak: a flow it names is
# never kept alive by it, and a dead one is never taken for another.
_last: tuple[weakref.ref[http.HTTPFlow], Snapshot] | None = None


def flow_snapshot(flow: http.HTTPFlow, vault: Vault) -> Snapshot:
    """The vault as this flow first saw it: every addon decides, injects and redacts on one view
    (no change of secret between the decision and the injection), and the vault is asked once."""
    global _last
    last = _last
    if last is not None and last[0]() is flow:
        return last[1]
    snapshot = _snapshots.get(flow)
    if snapshot is None:
        snapshot = _snapshots[flow] = vault.snapshot()
    _last = (weakref.ref(flow), snapshot)
    return snapshot


def flow_tokens(flow: http.HTTPFlow, vault: Vault, tokens: Tokens) -> Mapping[str, str]:
    """The proxy clients' tokens for this flow: from its snapshot when they live in the vault
    (:class:`AgentTokens`), so the stages that ask share the flow's one look at the store."""
    if isinstance(tokens, AgentTokens):
        return tokens.as_of(flow_snapshot(flow, vault))
    return tokens()


def renew_flow_snapshot(flow: http.HTTPFlow) -> None:
    """Forget this flow's view after the vault changed on its behalf (an OAuth token refreshed
    for it), so the injection that follows uses the new credential."""
    global _last
    _snapshots.pop(flow, None)
    _last = None


def refuse(flow: http.HTTPFlow, status: int, reason: str, extra: dict[str, str] | None = None) -> None:
    """Answer the flow ourselves: nothing is sent upstream, the reason is recorded for the audit."""
    flow.metadata[DECISION] = "refused"
    flow.metadata[REASON] = reason
    headers = {"Content-Type": "text/plain; charset=utf-8", REFUSED_HEADER: reason, **(extra or {})}
    flow.response = http.Response.make(status, f"clavis-mcp refused this request: {reason}\n", headers)


def is_settled(flow: http.HTTPFlow) -> bool:
    """A flow another addon already answered, or one that is gone, is left alone."""
    return bool(flow.response or flow.error or not flow.live)
