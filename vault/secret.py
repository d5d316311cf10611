"""The Secret type: a value that cannot be printed by accident.

Like httpx printing sensitive headers as ``[secure]``, the redaction is built into the
type, so a stray ``print``, log line, ``repr`` or exception message shows a fingerprint
and never the value. ``reveal()`` is the single way out, used at the injection point.

A fingerprint is a truncated HMAC-SHA256 of the value under a key the vault holds (derived
from its data key, see ``docs/vault-format.md``), never a plain hash: a plain hash of a
secret confirms any guess offline (a password, the few characters a masked view hides), so
whoever reads a fingerprint (a log, a tool result, the ``access_fp`` column of a copied
vault file) could test guesses against it without limit. Keyed, it names a value only to
those holding the vault key. The vault keys the secrets it returns with its own key, so
every process of one vault (CLI ``show``, the MCP server's ``get_credentials``, the proxy)
prints the same fingerprint for the same value, and another vault prints another one.

A Secret made outside a vault (a value just typed in at registration, a token a provider
has just sent, a test's) is keyed with the key of the vault this process opened last, so
what ``add`` prints matches what ``show`` prints later; in a process that has opened no
vault, with a random key drawn once per process, so its fingerprints mean something only
within that process. Never with an unkeyed hash. Such a fingerprint is for showing: one that
a vault stores, or compares with its own secrets' (the OAuth row's ``access_fp``, the key of
the proxy's redactors), is taken with ``Vault.keyed``, whatever vaults the process has opened.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NoReturn

FINGERPRINT_PREFIX = "hmac:"
FINGERPRINT_HEX = 16  # 64 bits: no collision between the few values one service ever holds
KEY_BYTES = 32
MASK_MIN_LENGTH = 24
MASK_VISIBLE = 4
MASK_HIDDEN = "…****"


class FingerprintKey:
    """The HMAC key of fingerprints. Never printed, never pickled, never handed out raw."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a fingerprint key is {KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def random(cls) -> FingerprintKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    def fingerprint(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return FINGERPRINT_PREFIX + digest[:FINGERPRINT_HEX]

    def __repr__(self) -> str:
        return "FingerprintKey(<hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("keys are not pickled")


_PROCESS_KEY = FingerprintKey.random()
_outside_key = _PROCESS_KEY


def key_secrets_made_outside_a_vault(key: FingerprintKey) -> None:
    """Key the fingerprints of Secrets made from now on without a key of their own with ``key``.

    Called by the vault when it opens: a process mostly works with one vault, and a value typed
    at ``add`` should print the fingerprint the vault will print once it is stored. Secrets
    already made keep the key they were made with, so a fingerprint never changes under a Secret.
    """
    global _outside_key
    _outside_key = key


class Secret:
    __slots__ = ("_fingerprint", "_key", "_value")

    def __init__(self, value: str, key: FingerprintKey | None = None) -> None:
        """``key``: the vault's fingerprint key, given by the vault for the secrets it returns."""
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value
        self._key = _outside_key if key is None else key
        self._fingerprint: str | None = None

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        """A short, stable identifier that says which secret without saying what it is (computed
        once: the proxy asks for it on every response)."""
        if self._fingerprint is None:
            self._fingerprint = self._key.fingerprint(self._value)
        return self._fingerprint

    def masked(self) -> str:
        """The last four characters behind an ellipsis (``…wxyz``), and nothing at all
        (``…****``) for a secret of fewer than 24 characters.

        So at most four characters, and at most a sixth of the value, are ever shown: enough
        to tell two keys apart, while 20 or more characters stay hidden, far beyond guessing.
        No prefix is shown, not even a provider's public marker such as ``sk-``: the service's
        connector already says what kind of key it is, and for a value that merely looks like
        a provider key the "marker" would be its first secret characters.
        """
        if len(self._value) < MASK_MIN_LENGTH:
            return MASK_HIDDEN
        return "…" + self._value[-MASK_VISIBLE:]

    def __repr__(self) -> str:
        return f"Secret({self.fingerprint})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        """Keyed once per process, whatever key the fingerprint uses: equal values hash equal."""
        return hash(_PROCESS_KEY.fingerprint(self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values are not pickled")
