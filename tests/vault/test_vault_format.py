"""docs/vault-format.md is enough to read a vault: an independent reader built from the page alone.

Only sqlite3 and cryptography's primitives here, no vault code, so a change to the format that
the page does not describe fails this test.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.keys.passphrase import ENV_VAR, PassphraseStore
from tests.conftest import make_service

SECRET = "sk-format-0123456789abcdefghijkl"
PASSPHRASE = "a passphrase for the format test"


def read_secret_as_documented(home: Path, service: str, passphrase: str | None) -> str:
    with closing(sqlite3.connect(home / "vault.db")) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        blob = conn.execute("SELECT blob FROM secrets WHERE service=? AND field='credential'", (service,)).fetchone()[0]
    assert meta["schema_version"] == "2"
    params = json.loads(meta["key_params"])
    if meta["key_store"] == "keyfile":
        kek = base64.b64decode((home / params["file"]).read_bytes().strip())
    else:
        assert passphrase is not None and params["kdf"] == "argon2id"
        kek = Argon2id(
            salt=base64.b64decode(params["salt"]),
            length=32,
            iterations=params["iterations"],
            lanes=params["lanes"],
            memory_cost=params["memory_cost_kib"],
        ).derive(passphrase.encode())
    vault_id = meta["vault_id"]
    wrapped = bytes.fromhex(meta["wrapped_key"])
    assert len(wrapped) == 60
    wrap_aad = f"clavis-mcp/v1|{vault_id}||data-key:{meta['key_store']}".encode()
    data_key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], wrap_aad)
    aad = f"clavis-mcp/v1|{vault_id}|{service}|credential".encode()
    return AESGCM(data_key).decrypt(blob[:12], blob[12:], aad).decode()


@pytest.mark.parametrize("store", ["keyfile", "passphrase"])
def test_an_independent_reader_following_the_document_decrypts_a_secret(
    home: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)
    with Vault.create(home, PassphraseStore() if store == "passphrase" else None) as vault:
        vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    assert read_secret_as_documented(home, "svc", PASSPHRASE if store == "passphrase" else None) == SECRET


def test_the_document_describes_every_meta_row(vault: Vault, home: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "vault-format.md").read_text()
    for (key,) in vault.query("SELECT key FROM meta"):
        assert f"| `{key}` |" in doc, key
