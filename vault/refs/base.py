"""What a secret reference is, how it is kept in a secret field, and the one interface of a backend.

A reference (``op://Private/OpenAI/credential``) is stored, sealed like any secret, in place of
the value, behind :data:`MARKER`: a NUL byte no stored secret can start with (registration
refuses control characters), so a reader that forgot to resolve it injects nothing usable and a
header method refuses it outright. The value itself is fetched at use time and never written.

A reference is not a secret, so ``show`` prints it; one carrying a credential in its URL
(``bao://user:token@host/...``, ``?token=``) is refused, since it would be printed too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidSecretRef, SecretRefUnresolved
from ..secret import Secret

MARKER = "\x00clavis-ref:"
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SCHEME = re.compile(r"^([a-z][a-z0-9+-]*)://(.*)$", re.S)
CREDENTIAL_WORDS = re.compile(r"(token|password|passwd|secret|key|auth)", re.I)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed reference: ``scheme`` picks the backend, ``rest`` is what follows ``://``."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.rest}"

    @property
    def fragment(self) -> str | None:
        """What follows ``#`` (a field of a KV secret or a JSON key), or None."""
        return self.rest.partition("#")[2] or None

    @property
    def location(self) -> str:
        """``rest`` without the fragment."""
        return self.rest.partition("#")[0]


class Backend(Protocol):
    """One place secrets are kept: turn a reference into its current value, or raise
    :class:`SecretRefUnresolved` saying what to check (never the value)."""

    def __call__(self, ref: SecretRef) -> Secret: ...


def parse(text: str, schemes: tuple[str, ...]) -> SecretRef:
    """``text`` as a reference of one of ``schemes``; InvalidSecretRef says what is wrong."""
    if CONTROL.search(text):
        raise InvalidSecretRef("a secret reference must not contain control characters")
    match = SCHEME.match(text.strip())
    if not match:
        raise InvalidSecretRef(f"{text!r} is not a secret reference; write SCHEME://..., one of: "
                               + ", ".join(f"{s}://" for s in schemes))  # fmt: skip
    scheme, rest = match.groups()
    if scheme not in schemes:
        raise InvalidSecretRef(f"unknown secret reference scheme {scheme}://; use one of: "
                               + ", ".join(f"{s}://" for s in schemes))  # fmt: skip
    authority = rest.split("/", 1)[0]
    if "@" in authority and ":" in authority.split("@", 1)[0]:
        raise InvalidSecretRef(f"a {scheme}:// reference must not carry a credential (user:password@); "
                               "give the backend its login through its own environment or login command")  # fmt: skip
    query = rest.partition("#")[0].partition("?")[2]
    if any(CREDENTIAL_WORDS.search(pair.partition("=")[0]) for pair in query.split("&") if pair):
        raise InvalidSecretRef(f"a {scheme}:// reference must not carry a credential in its query; "
                               "give the backend its login through its own environment")  # fmt: skip
    if not rest.partition("#")[0].strip("/"):
        raise InvalidSecretRef(f"the {scheme}:// reference names nothing; e.g. {scheme}://NAME")
    return SecretRef(scheme, rest)


def stored(ref: SecretRef) -> Secret:
    """The form a reference is kept in, in a secret field of the vault."""
    return Secret(MARKER + str(ref))


def stored_ref(value: Secret) -> str | None:
    """The reference a stored field holds, or None when it holds a value."""
    text = value.reveal()
    return text[len(MARKER) :] if text.startswith(MARKER) else None


def checked(ref: SecretRef, value: str) -> Secret:
    """A resolved value as a Secret: one trailing newline dropped (files, CLI output), and refused
    when empty or when it would split a header, as registration refuses a typed one."""
    value = value.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretRefUnresolved(f"secret reference {ref} resolved to an empty value; check the item it names")
    if CONTROL.search(value) or value != value.strip():
        raise SecretRefUnresolved(
            f"the value of secret reference {ref} has control characters or surrounding spaces; "
            "keep the bare secret there (one line)"
        )
    return Secret(value)
