"""How a proxy treats traffic: one object every proxy is built from, in the bottom layer.

The embedded proxy, the MCP gateway and the standalone ``clavis-mcp proxy`` each build one
:class:`ProxyConfig` and hand it down unchanged; :func:`clavis_mcp.addons.default_addons` gives
each addon the fields it needs in its constructor. So a new cross-cutting option (an approval
callback, a per-service policy, another passthrough rule) is one field here plus the addon
that reads it, not a new parameter on every layer in between (smokescreen's ``Config``).

It lives in the vault so the proxy, the MCP server and the CLI can all read it, and so a
policy stored in the vault has a home the proxy can see. It holds no secret: client tokens
arrive through a callable that is asked on every request, and the vault is handed to the
addons beside it, never inside it, so a config can be printed or logged whole (secrets never
become options, as in mitmproxy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .approvals import ApprovalHold
from .dialing import Resolver
from .hosts import HostRule

Tokens = Callable[[], Mapping[str, str]]
OnRecorded = Callable[[str, Mapping[str, Any]], None]


def no_clients() -> Mapping[str, str]:
    """The default set of proxy clients: none, so a proxy built without tokens lets no one in."""
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyConfig:
    """Everything a proxy is told besides the vault, the audit log and the CA.

    A future policy field (say ``approve: Callable[[Request], Awaitable[bool]]``, or the
    ``confirm_writes`` policy once the vault stores it) goes here, with a default that keeps
    today's behaviour, and is read by the one addon that enforces it.
    """

    tokens: Tokens = no_clients
    """Client name to proxy token, asked on every request so a revocation applies at once."""
    passthrough: tuple[HostRule, ...] = ()
    """Hosts tunnelled opaquely (no interception, no credential) when no service owns them."""
    pass_other_hosts: bool = False
    """Tunnel every host no service owns opaquely, as ``passthrough`` does, unless the agent was
    added with ``--deny-other-hosts`` (the standalone proxy and ``run``: agents keep the rest of
    the internet); False: refuse them (the MCP gateway, which only makes call_service requests)."""
    resolver: Resolver | None = None
    """Replaces DNS where a secret-carrying connection is checked before it is dialled; None: the system's."""
    max_decoded: int | None = None
    """The most one response may decode to; None: ``CLAVIS_MAX_DECODED_BYTES``, read when the addons are built."""
    upstream_timeout: float | None = None
    """Seconds the standalone proxy waits for an upstream's response head before answering 504;
    None: ``CLAVIS_UPSTREAM_TIMEOUT`` or 120, read when the proxy starts; 0: wait forever."""
    max_request_body: int | None = None
    """Bytes of one request body the standalone proxy buffers before refusing it (413); None:
    ``CLAVIS_MAX_REQUEST_BYTES`` or 100 MiB, read when the proxy starts."""
    extra_addons: tuple[object, ...] = ()
    """Addons that run after ours (tests route real-looking names to loopback with one)."""
    on_recorded: OnRecorded | None = None
    """Told, in process, the audit record (its fields and id) of each request that carried a
    ``CALL_HEADER`` id: call_service reports what the log says, also for a streamed body or a
    failure the engine answered itself."""
    approvals: ApprovalHold | None = None
    """Which requests wait for a person's approval, in which shared queue, for how long
    (``vault/approvals.py``, read by ``addons/approval.py``); None: no request waits."""
