"""The local CA that agents trust, kept in mitmproxy's CertStore format inside the vault home."""

from __future__ import annotations

from .ca import CA_CERT_NAME, LocalCA

__all__ = ["CA_CERT_NAME", "LocalCA"]
