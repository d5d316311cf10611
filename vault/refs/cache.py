"""Resolved references, kept in this process's memory for a short time (``CLAVIS_REF_TTL``).

Each request would otherwise start ``op`` or call a KV server; a short lifetime still picks up
a rotation at the source within a minute. A value is never written anywhere: it lives in this
cache (and in the redactors built from it) until it expires or the process ends. One resolution
per reference runs at a time: concurrent requests wait for it rather than start their own.
The value a reference had before its last resolution is kept beside it, so a response to a
request sent with the old value is still redacted after a rotation.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidSecretRef
from ..secret import Secret
from .base import SecretRef

TTL_VARIABLE = "CLAVIS_REF_TTL"
DEFAULT_TTL = 60.0


def ttl_from_env() -> float:
    text = os.environ.get(TTL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TTL
    try:
        ttl = float(text)
    except ValueError:
        ttl = -1.0
    if not 0 <= ttl <= 86400:
        raise InvalidSecretRef(f"{TTL_VARIABLE}={text!r} must be a number of seconds from 0 (no cache) to 86400")
    return ttl


@dataclass(slots=True)
class _Entry:
    value: Secret
    until: float
    previous: Secret | None


class RefCache:
    def __init__(self, resolve: Callable[[SecretRef], Secret], clock: Callable[[], float] = time.monotonic) -> None:
        self._resolve = resolve
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, ref: SecretRef) -> Secret:
        """The value of ``ref``, resolved again once its lifetime has passed."""
        key = str(ref)
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.until:
            return entry.value
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.until:
                return entry.value
            value = self._resolve(ref)
            previous = None if entry is None else entry.value if entry.value != value else entry.previous
            self._entries[key] = _Entry(value, self._clock() + ttl_from_env(), previous)
            return value

    def known(self, ref: SecretRef) -> tuple[Secret, ...]:
        """Every value ``ref`` had in this cache's memory (for redaction), newest first."""
        entry = self._entries.get(str(ref))
        if entry is None:
            return ()
        return (entry.value,) if entry.previous is None else (entry.value, entry.previous)

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()
