"""Encryption at rest: AES-256-GCM with associated data, and wrapping of the data key.

Each write draws a fresh 96-bit nonce. The associated data binds a ciphertext to its
vault, service and field, so a ciphertext copied to another row (or another vault) fails
authentication instead of decrypting to the wrong service's secret.

The data key itself is stored wrapped (AES-256-GCM again) by a key-encryption key that
the chosen key store holds (keychain, passphrase, key file). Changing the key store
re-wraps this one key; no secret has to be re-encrypted or re-entered.

Keys for other uses than encryption (the fingerprint key) are derived from the data key
with HKDF, each bound to its vault and purpose, so the data key is only ever an AES key
and a derived key reveals nothing about it or about its siblings.
"""

from __future__ import annotations

import os
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import VaultCorrupted, WrongKey

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
FORMAT = b"clavis-mcp/v1"


def associated_data(vault_id: str, service: str, field: str) -> bytes:
    return b"|".join([FORMAT, vault_id.encode(), service.encode(), field.encode()])


def wrap_context(key_store: str) -> str:
    """The ``field`` of the associated data of the wrapped data key, e.g. ``data-key:keychain``."""
    return f"data-key:{key_store}"


class DataKey:
    """The vault's data key. Never printed, never pickled, never handed out raw."""

    __slots__ = ("_aead", "_raw")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultCorrupted(f"the vault data key must be {KEY_BYTES} bytes; the vault header is damaged")
        self._raw = key
        self._aead = AESGCM(key)

    @classmethod
    def generate(cls) -> DataKey:
        return cls(AESGCM.generate_key(bit_length=KEY_BYTES * 8))

    @classmethod
    def unwrap(cls, kek: bytes, blob: bytes, aad: bytes) -> DataKey:
        """Recover the data key wrapped by :meth:`wrap`; raise WrongKey if ``kek`` is not the one."""
        if len(kek) != KEY_BYTES or len(blob) != NONCE_BYTES + KEY_BYTES + TAG_BYTES:
            raise WrongKey
        try:
            return cls(AESGCM(kek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad))
        except InvalidTag:
            raise WrongKey from None

    def wrap(self, kek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(kek).encrypt(nonce, self._raw, aad)

    def derive(self, info: bytes) -> bytes:
        """A 32-byte key for another purpose, named by ``info`` (HKDF-SHA256, RFC 5869, no salt):
        the same for every process that opens the vault, as long as the data key lives."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(self._raw)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise VaultCorrupted(f"{what} is truncated; restore the vault from a backup or re-add it")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise VaultCorrupted(
                f"{what} failed its integrity check (tampered, moved between rows, or a different key); "
                "restore the vault from a backup or re-add the secret"
            ) from None

    def __repr__(self) -> str:
        return "DataKey(<hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("keys are not pickled")
