"""``op://vault/item/field``: 1Password, through its CLI (``op read``), as the user's shell would.

Trusts the ``op`` program found on the proxy's PATH and the session it has (the desktop app's
integration, or ``OP_SERVICE_ACCOUNT_TOKEN`` in the proxy's environment).
"""

from __future__ import annotations

from ..errors import InvalidSecretRef
from ..secret import Secret
from .base import SecretRef, checked
from .command import run


def validate(ref: SecretRef) -> None:
    parts = ref.location.split("?")[0].strip("/").split("/")
    if len(parts) not in (3, 4) or not all(parts):
        raise InvalidSecretRef(f"{ref} must be op://VAULT/ITEM/FIELD (or op://VAULT/ITEM/SECTION/FIELD)")


def resolve(ref: SecretRef) -> Secret:
    validate(ref)
    output = run(ref, ["op", "read", "--no-newline", str(ref)],
                 "check `op whoami` as the proxy's user (or OP_SERVICE_ACCOUNT_TOKEN) and the item's path")  # fmt: skip
    return checked(ref, output)
