"""Which CAs the proxy trusts when it verifies upstream servers.

mitmproxy's ``ssl_verify_upstream_trusted_ca`` replaces the default trust store instead of
adding to it, so we hand it one bundle: the system's CAs (or certifi's), plus any extra CAs
named by ``CLAVIS_UPSTREAM_CA`` (a corporate TLS inspector, or a test upstream).
"""

from __future__ import annotations

import os
from pathlib import Path

from clavis_mcp.certs.bundle import PEM_MARKER, write_bundle

UPSTREAM_CA_ENV = "CLAVIS_UPSTREAM_CA"


def build_upstream_bundle(target: Path) -> Path:
    """Write the bundle to ``target`` and return it; a missing extra CA file is a clear error."""
    extra = os.environ.get(UPSTREAM_CA_ENV)
    if not extra:
        return write_bundle(target)
    path = Path(extra).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{UPSTREAM_CA_ENV}={extra} does not name a readable PEM file")
    data = path.read_bytes()
    if PEM_MARKER not in data:
        raise ValueError(f"{UPSTREAM_CA_ENV}={extra} holds no PEM certificate")
    return write_bundle(target, data)
