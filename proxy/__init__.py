"""The embedded mitmproxy and what agents need to use it."""

from __future__ import annotations

from clavis_mcp.vault.errors import ProxyStartError

from .embedded import EmbeddedProxy

__all__ = ["EmbeddedProxy", "ProxyStartError"]
