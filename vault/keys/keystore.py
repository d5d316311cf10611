"""Key stores: where the key that unwraps the vault's data key lives.

Three kinds, chosen at ``clavis-mcp init`` and changed with ``clavis-mcp rekey``:

- ``keychain``: a random key in the OS keychain (macOS Keychain, Windows Credential Manager,
  Secret Service), through ``keyring``; only real keychains are accepted.
- ``passphrase``: a key derived from a passphrase with Argon2id; the parameters and salt are
  in the vault header, the passphrase nowhere.
- ``keyfile``: a random key in a 0600 file beside the vault; any process of the same user can
  read it.

A store creates key material for a vault (:meth:`KeyStore.create`), loads it again from the
parameters saved in the vault header (:meth:`KeyStore.load`), and removes material that a
rekey made obsolete (:meth:`KeyStore.discard`). The parameters never hold a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import KeyStoreUnavailable

KEY_STORES = ("keychain", "passphrase", "keyfile")

Params = dict[str, str | int]
AskPassphrase = Callable[[], str]


class KeyStore(Protocol):
    kind: str

    def create(self, home: Path, vault_id: str) -> tuple[bytes, Params]:
        """Make a new key-encryption key; return it and the (non-secret) parameters to find it again."""
        ...

    def load(self, home: Path, vault_id: str, params: Params) -> bytes:
        """Return the key-encryption key described by ``params``; raise VaultLocked if unavailable."""
        ...

    def discard(self, home: Path, params: Params) -> None:
        """Remove key material that no longer opens the vault (after a rekey)."""
        ...

    def describe(self, home: Path, params: Params) -> str:
        """One line for `doctor` and `init`: which store, where, and its trade-off."""
        ...


def key_store(kind: str, ask_passphrase: AskPassphrase | None = None) -> KeyStore:
    """The store named ``kind`` (as saved in a vault header or given to ``--key-store``).

    Imported here, not at the top: ``keyring`` and Argon2 load only for the vaults that use them.
    """
    match kind:
        case "keychain":
            from .keychain import KeychainStore

            return KeychainStore()
        case "passphrase":
            from .passphrase import PassphraseStore

            return PassphraseStore(ask_passphrase)
        case "keyfile":
            from .keyfile import KeyFileStore

            return KeyFileStore()
    raise KeyStoreUnavailable(f"unknown key store {kind!r}; choose one of: {', '.join(KEY_STORES)}")
