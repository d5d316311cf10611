"""``keyring://SERVICE/USERNAME``: an item another application keeps in the OS keychain (macOS
Keychain, Windows Credential Locker, the Secret Service on Linux), through ``keyring``.

Trusts the OS keychain and the session of the proxy's user; on Linux the Secret Service (e.g.
gnome-keyring) must be unlocked in the proxy's D-Bus session.
"""

from __future__ import annotations

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret
from .base import SecretRef, checked


def parts(ref: SecretRef) -> tuple[str, str]:
    service, _, username = ref.location.strip("/").rpartition("/")
    if not service or not username or ref.fragment:
        raise InvalidSecretRef(f"{ref} must be keyring://SERVICE/USERNAME (as `keyring get SERVICE USERNAME`)")
    return service, username


def validate(ref: SecretRef) -> None:
    parts(ref)


def resolve(ref: SecretRef) -> Secret:
    import keyring
    from keyring.errors import KeyringError

    service, username = parts(ref)
    try:
        value = keyring.get_password(service, username)
    except KeyringError as exc:
        raise SecretRefUnresolved(f"the OS keychain could not be read for {ref} ({type(exc).__name__}); "
                                  "check that it is unlocked in the proxy's session") from None  # fmt: skip
    if value is None:
        raise SecretRefUnresolved(f"the OS keychain has no item for {ref}; check with: keyring get "
                                  f"'{service}' '{username}'")  # fmt: skip
    return checked(ref, value)
