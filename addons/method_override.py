"""The methods a request asks for besides its request line, read from a mitmproxy request.

The reading itself is pure and lives in :mod:`clavis_mcp.vault.method_overrides` (which says
which headers and fields servers obey), shared with the MCP front's question before a write.
"""

from __future__ import annotations

from mitmproxy import http

from clavis_mcp.vault.method_overrides import Override, body_overrides, header_overrides, overrides_of

__all__ = ["body_overrides", "header_overrides", "requested_overrides"]


def requested_overrides(request: http.Request) -> list[Override]:
    """Every method ``request`` names besides its request line; ValueError for a form it cannot read."""
    return overrides_of(
        request.headers.items(multi=True), request.path.partition("?")[2], request.headers.get("content-type", ""),
        request.headers.get("content-encoding", ""), request.raw_content,
    )  # fmt: skip
