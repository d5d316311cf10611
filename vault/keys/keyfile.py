"""The key-file key store: the key-encryption key in a 0600 file beside the vault.

Any process running as the same user can read it (the trade-off gh makes when no
keychain exists); `clavis-mcp init` warns and `clavis-mcp doctor` says so.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

from ..errors import VaultCorrupted, VaultLocked
from ..paths import ensure_private, write_private_file
from .crypto import KEY_BYTES
from .keystore import Params

KEY_FILE = "vault.key"
WARNING = "any process running as this user can read the key file; prefer --key-store keychain or passphrase"


class KeyFileStore:
    kind = "keyfile"

    def create(self, home: Path, vault_id: str) -> tuple[bytes, Params]:
        """Write a new key file; never over an existing one (``vault.key``, else a unique name)."""
        kek = os.urandom(KEY_BYTES)
        staged = home / f".vault-{uuid.uuid4().hex}.key.tmp"
        write_private_file(staged, base64.b64encode(kek) + b"\n")
        try:
            for name in (KEY_FILE, f"vault-{uuid.uuid4().hex[:8]}.key"):
                try:
                    (home / name).hardlink_to(staged)
                    return kek, {"file": name}
                except FileExistsError:
                    continue
            raise VaultCorrupted(f"cannot create a key file in {home}: names are taken; move stray .key files away")
        finally:
            staged.unlink(missing_ok=True)

    def load(self, home: Path, vault_id: str, params: Params) -> bytes:
        path = home / _file_name(params)
        if not path.exists():
            raise VaultLocked(f"the vault key file {path} is missing; restore it from your backup")
        ensure_private(path)
        try:
            kek = base64.b64decode(path.read_bytes().strip(), validate=True)
        except ValueError:
            kek = b""
        if len(kek) != KEY_BYTES:
            raise VaultCorrupted(f"the vault key file {path} is damaged; restore it from your backup")
        return kek

    def discard(self, home: Path, params: Params) -> None:
        (home / _file_name(params)).unlink(missing_ok=True)

    def describe(self, home: Path, params: Params) -> str:
        return f"key file {home / _file_name(params)} ({WARNING})"


def _file_name(params: Params) -> str:
    name = str(params.get("file", ""))
    if not name or "/" in name or name.startswith("."):
        raise VaultCorrupted(f"the vault header names an invalid key file {name!r}; restore it from a backup")
    return name
