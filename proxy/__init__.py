"""The embedded mitmproxy and what agents need to use it."""

from __future__ import annotations

from .embedded import EmbeddedProxy, ProxyStartError

__all__ = ["EmbeddedProxy", "ProxyStartError"]
