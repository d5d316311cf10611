"""The Secret type: a value that cannot be printed by accident.

Like httpx printing sensitive headers as ``[secure]``, the redaction is built into the
type, so a stray ``print``, log line, ``repr`` or exception message shows a fingerprint
and never the value. ``reveal()`` is the single way out, used at the injection point.
"""

from __future__ import annotations

import hashlib
import hmac


class Secret:
    __slots__ = ("_fingerprint", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value
        self._fingerprint: str | None = None

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        """A short, stable identifier that says which secret without saying what it is (computed
        once: the proxy asks for it on every response)."""
        if self._fingerprint is None:
            self._fingerprint = "sha256:" + hashlib.sha256(self._value.encode()).hexdigest()[:12]
        return self._fingerprint

    def masked(self) -> str:
        """Prefix and last four characters, as password managers show; short secrets show nothing."""
        value = self._value
        if len(value) < 16:
            return "…" + "*" * 4
        prefix_len = min(value.find("-", 0, 8) + 1 or 3, 8)
        return f"{value[:prefix_len]}…{value[-4:]}"

    def __repr__(self) -> str:
        return f"Secret({self.fingerprint})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> object:
        raise TypeError("Secret values are not pickled")
