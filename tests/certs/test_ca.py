from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from clavis_mcp.certs import LocalCA


def test_ca_private_key_is_0600_in_a_0700_folder(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "certs").ensure()
    assert stat.S_IMODE(ca.directory.stat().st_mode) == 0o700
    files = list(ca.directory.iterdir())
    assert any("PRIVATE KEY" in f.read_text() for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)


def test_ca_is_created_once_and_reused(tmp_path: Path) -> None:
    first = LocalCA(tmp_path / "certs").ensure().fingerprint()
    assert LocalCA(tmp_path / "certs").ensure().fingerprint() == first


def test_fingerprint_is_sha256_of_the_der_certificate(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "certs").ensure()
    digest = hashlib.sha256(ca.certificate().public_bytes(Encoding.DER)).hexdigest().upper()
    assert ca.fingerprint().replace(":", "") == digest and len(ca.fingerprint()) == 95


def test_client_bundle_holds_the_system_cas_then_ours_and_no_key(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "certs").ensure()
    text = ca.write_client_bundle().read_text()
    assert text.rstrip().endswith(ca.cert_path.read_text().strip())
    assert text.count("BEGIN CERTIFICATE") > 10 and "PRIVATE KEY" not in text
