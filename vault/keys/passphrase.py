"""The passphrase key store: the key-encryption key derived from a passphrase with Argon2id.

Parameters follow RFC 9106's second recommended option (t=3, p=4, 64 MiB); they and the
salt are saved in the vault header so a later release can raise them on `rekey` while
still opening older vaults. The passphrase comes from ``CLAVIS_PASSPHRASE`` or a hidden
prompt, and is never stored.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ..errors import VaultCorrupted, VaultError, VaultLocked
from .crypto import KEY_BYTES
from .keystore import AskPassphrase, Params

ENV_VAR = "CLAVIS_PASSPHRASE"
MIN_LENGTH = 8
DEFAULTS: Params = {"kdf": "argon2id", "iterations": 3, "lanes": 4, "memory_cost_kib": 64 * 1024}
# Bounds on header values, so a tampered header cannot make `open` allocate gigabytes or spin.
_LIMITS = {"iterations": (1, 64), "lanes": (1, 64), "memory_cost_kib": (8 * 1024, 4 * 1024 * 1024)}


class PassphraseStore:
    kind = "passphrase"

    def __init__(self, ask: AskPassphrase | None = None, env_var: str = ENV_VAR) -> None:
        self._ask = ask
        self._env_var = env_var

    def create(self, home: Path, vault_id: str) -> tuple[bytes, Params]:
        passphrase = self._passphrase()
        if len(passphrase) < MIN_LENGTH:
            raise VaultError(f"the passphrase must be at least {MIN_LENGTH} characters; choose a longer one")
        params: Params = {**DEFAULTS, "salt": base64.b64encode(os.urandom(16)).decode("ascii")}
        return derive(passphrase, params), params

    def load(self, home: Path, vault_id: str, params: Params) -> bytes:
        return derive(self._passphrase(), params)

    def discard(self, home: Path, params: Params) -> None:
        """Nothing to remove: the key existed only in memory."""

    def describe(self, home: Path, params: Params) -> str:
        return (
            f"passphrase (Argon2id, t={params.get('iterations')}, p={params.get('lanes')}, "
            f"m={params.get('memory_cost_kib')} KiB); asked for, or read from {ENV_VAR}"
        )

    def _passphrase(self) -> str:
        configured = os.environ.get(self._env_var)
        if configured:
            return configured
        passphrase = self._ask() if self._ask is not None else ""
        if not passphrase:
            raise VaultLocked(
                f"the vault is protected by a passphrase; set {self._env_var} or run the command in a terminal"
            )
        return passphrase


def derive(passphrase: str, params: Params) -> bytes:
    """Argon2id over ``passphrase`` with the header's parameters; refuses parameters out of bounds."""
    try:
        if params["kdf"] != "argon2id":
            raise ValueError(f"unknown kdf {params['kdf']!r}")
        costs = {name: int(params[name]) for name in _LIMITS}
        for name, (low, high) in _LIMITS.items():
            if not low <= costs[name] <= high:
                raise ValueError(f"{name}={costs[name]} is out of bounds")
        salt = base64.b64decode(str(params["salt"]), validate=True)
        if len(salt) < 16:
            raise ValueError("salt shorter than 16 bytes")
    except (KeyError, ValueError) as exc:
        raise VaultCorrupted(
            f"the passphrase parameters in the vault header are damaged ({exc}); restore a backup"
        ) from None
    kdf = Argon2id(
        salt=salt,
        length=KEY_BYTES,
        iterations=costs["iterations"],
        lanes=costs["lanes"],
        memory_cost=costs["memory_cost_kib"],
    )
    return kdf.derive(passphrase.encode("utf-8"))
