"""The keychain key store: a random key-encryption key kept in the OS keychain via ``keyring``.

``keyring`` falls back to whatever backend it finds, including plaintext files
(``keyrings.alt``) and a null backend that stores nothing. Those would make the keychain
choice a lie, so only the backends that are real keychains are accepted: macOS Keychain,
Windows Credential Manager, Secret Service (GNOME Keyring, KeePassXC) and KWallet.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from pathlib import Path

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend

from ..errors import KeyStoreUnavailable, VaultCorrupted, VaultLocked
from .crypto import KEY_BYTES
from .keystore import Params

SERVICE = "clavis-mcp"
REAL_KEYCHAINS = frozenset(
    {
        "keyring.backends.macOS",
        "keyring.backends.Windows",
        "keyring.backends.SecretService",
        "keyring.backends.libsecret",
        "keyring.backends.kwallet",
    }
)
_SWITCH = "or move the vault to another key store with: clavis-mcp rekey --key-store passphrase"


def real_keychain() -> KeyringBackend:
    """The OS keychain backend ``keyring`` would use, or KeyStoreUnavailable if it is not a real one."""
    chosen = keyring.get_keyring()
    candidates = list(chosen.backends) if isinstance(chosen, ChainerBackend) else [chosen]
    for backend in candidates:
        if type(backend).__module__ in REAL_KEYCHAINS and backend.priority >= 1:
            return backend
    found = ", ".join(_backend_name(b) for b in candidates) or "none"
    raise KeyStoreUnavailable(
        f"no OS keychain is available here (keyring offers: {found}; plaintext and null backends are refused); "
        "use --key-store passphrase or --key-store keyfile, or start a Secret Service such as gnome-keyring"
    )


class KeychainStore:
    kind = "keychain"

    def create(self, home: Path, vault_id: str) -> tuple[bytes, Params]:
        backend = real_keychain()
        account = f"{vault_id}/{uuid.uuid4().hex[:8]}"
        kek = os.urandom(KEY_BYTES)
        try:
            backend.set_password(SERVICE, account, base64.b64encode(kek).decode("ascii"))
        except keyring.errors.KeyringError as exc:
            raise _unusable(exc) from None
        return kek, {"service": SERVICE, "account": account, "backend": _backend_name(backend)}

    def load(self, home: Path, vault_id: str, params: Params) -> bytes:
        service, account = str(params.get("service", "")), str(params.get("account", ""))
        if not service or not account.startswith(vault_id + "/"):
            raise VaultCorrupted("the vault header names an invalid keychain entry; restore it from a backup")
        try:
            stored = real_keychain().get_password(service, account)
        except KeyStoreUnavailable as exc:
            raise VaultLocked(
                f"this vault's key is in the OS keychain, which this process cannot reach ({exc}); "
                "run clavis-mcp inside your logged-in desktop session, where the keychain is unlocked"
            ) from None
        except keyring.errors.KeyringError as exc:
            raise _unusable(exc) from None
        if stored is None:
            raise VaultLocked(
                f"the vault's key is not in the keychain (service {service!r}, account {account!r}); "
                "it was deleted or this is another user or machine: restore the keychain entry from a backup"
            )
        try:
            kek = base64.b64decode(stored, validate=True)
        except binascii.Error:
            kek = b""
        if len(kek) != KEY_BYTES:
            raise VaultCorrupted(f"the keychain entry {service}/{account} is damaged; restore it from a backup")
        return kek

    def discard(self, home: Path, params: Params) -> None:
        try:
            real_keychain().delete_password(str(params["service"]), str(params["account"]))
        except (keyring.errors.PasswordDeleteError, KeyError):
            pass

    def describe(self, home: Path, params: Params) -> str:
        return (
            f"OS keychain ({params.get('backend')}), entry {params.get('service')}/{params.get('account')}; "
            "other programs of this user need the keychain's consent where the OS enforces it"
        )


def _backend_name(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _unusable(exc: keyring.errors.KeyringError) -> VaultLocked:
    if isinstance(exc, keyring.errors.KeyringLocked):
        return VaultLocked(
            "the OS keychain is locked; unlock it (log in to the desktop session, or run "
            f"gnome-keyring-daemon --unlock) and retry, {_SWITCH}"
        )
    return VaultLocked(f"the OS keychain refused the request ({exc}); unlock or repair it and retry, {_SWITCH}")
