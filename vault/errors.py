"""Errors raised by the vault, the domain core.

    ClavisError
     ├── VaultError             the vault as a whole cannot be used
     │    ├── VaultNotFound     no vault at the expected place
     │    ├── VaultLocked       the key that opens the vault is not available
     │    │    └── KeyStoreUnavailable  the chosen key store does not work here
     │    ├── VaultCorrupted    a file or a ciphertext failed its integrity check
     │    └── InsecurePermissions
     ├── ServiceError           one service is wrong or missing
     │    ├── UnknownService
     │    ├── DuplicateService
     │    └── InvalidService    bad name, host rule, template or secret
     └── AuditWriteError        the audit log cannot be written (requests fail closed)

Messages say what went wrong and what to do, and never contain a secret value.
"""

from __future__ import annotations


class ClavisError(Exception):
    """Base of every error this product raises on purpose."""


class VaultError(ClavisError):
    """The vault cannot be opened or used."""


class VaultNotFound(VaultError):
    """No vault exists where one was expected."""


class VaultLocked(VaultError):
    """The key that opens the vault is missing or cannot be unlocked."""


class KeyStoreUnavailable(VaultLocked):
    """The requested key store (e.g. a real OS keychain) is not available on this machine."""


class VaultCorrupted(VaultError):
    """A vault file or a ciphertext failed its integrity check."""


class InsecurePermissions(VaultError):
    """A vault file or folder is readable by other users."""


class ServiceError(ClavisError):
    """A service definition is wrong or missing."""


class UnknownService(ServiceError):
    """No service has the requested name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(known) if known else "none registered yet"
        super().__init__(f"unknown service {name!r}; known services: {listed}")


class DuplicateService(ServiceError):
    """A service with this name (or an overlapping host rule) already exists."""


class InvalidService(ServiceError):
    """A service definition failed validation."""


class AuditWriteError(ClavisError):
    """The audit log cannot be written; the request it records must be refused."""
