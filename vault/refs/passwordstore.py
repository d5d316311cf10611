"""``pass://path/to/entry`` (pass, the standard Unix password manager) and ``gopass://...``: the
first line of ``pass show`` / ``gopass show``, where their conventions keep the password.

Trusts the program on the proxy's PATH, the store it reads (``PASSWORD_STORE_DIR``, default
``~/.password-store``) and the gpg-agent that decrypts it for the proxy's user.
"""

from __future__ import annotations

from ..errors import InvalidSecretRef
from ..secret import Secret
from .base import SecretRef, checked
from .command import run


def validate(ref: SecretRef) -> None:
    entry = ref.location.strip("/")
    if not entry or ".." in entry.split("/") or entry.startswith("-") or ref.fragment:
        raise InvalidSecretRef(f"{ref} must be {ref.scheme}://path/to/entry (no '..', no '#')")


def resolve(ref: SecretRef) -> Secret:
    validate(ref)
    entry = ref.location.strip("/")
    argv = [ref.scheme, "show", "--", entry]  # both print the password as the first line
    output = run(ref, argv, f"check that `{argv[0]} show {entry}` works as the proxy's user (gpg-agent unlocked)")
    return checked(ref, output.split("\n", 1)[0])
