"""Trust bundles: the system's CAs plus one more, in one PEM file.

Agents need ours added to what they already trust, not substituted for it, or their other
HTTPS traffic (no proxy, or passthrough hosts) stops working. Runtimes that take a single
file (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``GIT_SSL_CAINFO``) get
this bundle; the proxy's own upstream verification uses the same construction.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

from clavis_mcp.vault.paths import write_private_file

PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


def system_ca_file() -> Path:
    """The platform's CA file when OpenSSL knows one, else certifi's (macOS, Windows, slim images)."""
    default = ssl.get_default_verify_paths().cafile
    if default and Path(default).is_file():
        return Path(default)
    return Path(certifi.where())


def write_bundle(target: Path, *extra: bytes) -> Path:
    """Write the system CAs followed by each of ``extra`` (PEM) to ``target``, atomically, 0600."""
    parts = [system_ca_file().read_bytes(), *extra]
    write_private_file(target, b"\n".join(part.rstrip() + b"\n" for part in parts))
    return target
