"""Which CAs the proxy trusts when it verifies upstream servers.

mitmproxy's ``ssl_verify_upstream_trusted_ca`` replaces the default trust store instead of
adding to it, so we hand it one bundle: the system's CAs (or certifi's), plus any extra CAs
named by ``CLAVIS_UPSTREAM_CA`` (a corporate TLS inspector, or a test upstream).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import certifi

from vault.paths import write_private_file

UPSTREAM_CA_ENV = "CLAVIS_UPSTREAM_CA"


def system_ca_file() -> Path:
    default = ssl.get_default_verify_paths().cafile
    if default and Path(default).is_file():
        return Path(default)
    return Path(certifi.where())


def build_upstream_bundle(target: Path) -> Path:
    """Write the bundle to ``target`` and return it; a missing extra CA file is a clear error."""
    parts = [system_ca_file().read_bytes()]
    extra = os.environ.get(UPSTREAM_CA_ENV)
    if extra:
        path = Path(extra).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{UPSTREAM_CA_ENV}={extra} does not name a readable PEM file")
        data = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError(f"{UPSTREAM_CA_ENV}={extra} holds no PEM certificate")
        parts.append(data)
    write_private_file(target, b"\n".join(part.rstrip() + b"\n" for part in parts))
    return target
