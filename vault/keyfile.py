"""The key-file key store: the data key in a 0600 file beside the vault.

Any process running as the same user can read it (the trade-off gh makes when no
keychain exists); `clavis-mcp doctor` says so.
"""

from __future__ import annotations

import base64
from pathlib import Path

from .crypto import KEY_BYTES, DataKey
from .errors import VaultCorrupted, VaultLocked
from .paths import ensure_private, write_private_file

KEY_FILE = "vault.key"


def create_keyfile(home: Path) -> bytes:
    path = home / KEY_FILE
    if path.exists():
        raise VaultCorrupted(f"{path} already exists without a vault; move it away before running init")
    _, raw = DataKey.generate()
    write_private_file(path, base64.b64encode(raw) + b"\n")
    return raw


def load_keyfile(home: Path) -> bytes:
    path = home / KEY_FILE
    if not path.exists():
        raise VaultLocked(f"the vault key file {path} is missing; restore it from your backup")
    ensure_private(path)
    try:
        raw = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        raise VaultCorrupted(f"the vault key file {path} is damaged; restore it from your backup") from None
    if len(raw) != KEY_BYTES:
        raise VaultCorrupted(f"the vault key file {path} is damaged; restore it from your backup")
    return raw
