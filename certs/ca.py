"""Create and load the local CA with mitmproxy's own CertStore, in a 0700 folder.

mitmproxy's TlsConfig addon loads ``<confdir>/mitmproxy-ca.pem``; creating it here, with our
name on it, means the CLI can export the certificate before any proxy has run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .bundle import write_bundle

if TYPE_CHECKING:
    from cryptography import x509

BASENAME = "mitmproxy"  # the name mitmproxy's TlsConfig looks for in confdir
CA_CERT_NAME = f"{BASENAME}-ca-cert.pem"
BUNDLE_NAME = "clavis-trust-bundle.pem"  # system CAs plus ours, for agents' runtimes
KEY_SIZE = 2048


class LocalCA:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def cert_path(self) -> Path:
        """The public certificate (PEM) that clients trust."""
        return self.directory / CA_CERT_NAME

    def exists(self) -> bool:
        return (self.directory / f"{BASENAME}-ca.pem").exists()

    def ensure(self) -> LocalCA:
        """Create the CA on first use; tighten the folder mitmproxy creates 0755."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        if not self.exists():
            from mitmproxy.certs import CertStore  # only to create the CA: keeps start-up light

            CertStore.create_store(
                self.directory, BASENAME, KEY_SIZE, organization="clavis-mcp", cn="clavis-mcp local CA"
            )
        for path in self.directory.iterdir():
            path.chmod(0o600)
        return self

    @property
    def bundle_path(self) -> Path:
        return self.directory / BUNDLE_NAME

    def write_client_bundle(self) -> Path:
        """(Re)write the system CAs plus our CA, for agents; rewritten each time so system updates land."""
        self.ensure()
        return write_bundle(self.bundle_path, self.cert_path.read_bytes())

    def certificate(self) -> x509.Certificate:
        from cryptography import x509  # ~12 ms to import: not before the MCP handshake

        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, as browsers and `openssl x509 -fingerprint` show it."""
        from cryptography.hazmat.primitives.serialization import Encoding

        digest = hashlib.sha256(self.certificate().public_bytes(Encoding.DER)).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
