"""Encryption of secrets at rest: AES-256-GCM with associated data.

Each write draws a fresh 96-bit nonce. The associated data binds a ciphertext to its
vault, service and field, so a ciphertext copied to another row (or another vault) fails
authentication instead of decrypting to the wrong service's secret.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import VaultCorrupted

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"clavis-mcp/v1"


def associated_data(vault_id: str, service: str, field: str) -> bytes:
    return b"|".join([FORMAT, vault_id.encode(), service.encode(), field.encode()])


class DataKey:
    """The vault's data key. Never printed, never pickled."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise VaultCorrupted(f"the vault key must be {KEY_BYTES} bytes; the key file is damaged")
        self._aead = AESGCM(key)

    @classmethod
    def generate(cls) -> tuple[DataKey, bytes]:
        raw = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        return cls(raw), raw

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        if len(blob) < NONCE_BYTES + 16:
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

    def __reduce__(self) -> object:
        raise TypeError("keys are not pickled")
