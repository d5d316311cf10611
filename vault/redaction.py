"""Redaction: every spelling in which a secret can come back, replaced by a marker.

A reflected secret rarely comes back verbatim: APIs echo it URL-encoded in a link,
base64-encoded inside a token, JSON-escaped in an error body, hex in a debug dump. Each
secret is expanded once into all those forms; one compiled pattern then scrubs them all.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from .secret import Secret

MIN_FORM_LENGTH = 4  # shorter fragments would scrub ordinary text


def marker(service: str) -> bytes:
    return f"[REDACTED:{service}]".encode()


def _base64_forms(raw: bytes) -> set[bytes]:
    """The part of a base64 stream fixed by ``raw`` alone, at each of the three byte alignments."""
    forms = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw).rstrip(b"=")
            start = -(-4 * shift // 3)  # ceil(4 * shift / 3)
            end = 4 * (shift + len(raw)) // 3
            forms.add(encoded[start:end])
    return forms


def forms_of(value: str) -> set[bytes]:
    """All encodings of ``value`` that redaction looks for (DESIGN.md §6)."""
    raw = value.encode("utf-8")
    json_escaped = json.dumps(value)[1:-1]
    forms = {
        raw,
        quote(value, safe="").encode(),
        quote(value, safe="").lower().encode(),
        quote_plus(value).encode(),
        json_escaped.encode(),
        json_escaped.replace("/", "\\/").encode(),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    }
    forms |= _base64_forms(raw)
    return {form for form in forms if len(form) >= MIN_FORM_LENGTH}


def trie_pattern(forms: Iterable[bytes]) -> bytes:
    """One regex for all ``forms`` with shared prefixes factored out, longest match first.

    A flat alternation of 30 forms makes ``re`` try every branch at almost every byte; the
    trie tries one branch per distinct next byte, which doubles throughput (bench/notes.md).
    A form that is a prefix of a longer one becomes a greedy optional tail, so the longer
    form still wins, as it did when the alternation was sorted by length.
    """
    root: dict[int | None, dict] = {}  # type: ignore[type-arg]
    for form in forms:
        node = root
        for byte in form:
            node = node.setdefault(byte, {})
        node[None] = {}

    def build(node: dict[int | None, dict]) -> bytes:  # type: ignore[type-arg]
        branches = [
            re.escape(bytes([b])) + build(child) for b, child in sorted(node.items(), key=_by_byte) if b is not None
        ]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if None in node else body

    return build(root)


def _by_byte(item: tuple[int | None, object]) -> int:
    return -1 if item[0] is None else item[0]


class Redactor:
    """Scrubs the given secrets (and any extra derived values, such as a basic-auth pair)."""

    def __init__(self, service: str, secrets: Iterable[Secret], derived: Iterable[str] = ()) -> None:
        self.marker = marker(service)
        forms: set[bytes] = set()
        for secret in secrets:
            forms |= forms_of(secret.reveal())
        for value in derived:
            forms |= forms_of(value)
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile(trie_pattern(forms)) if ordered else None
        self.longest = len(ordered[0]) if ordered else 0
        self._sorted = sorted(forms)
        self._first_bytes = frozenset(form[0] for form in forms)

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` could be the beginning of a form (0 if none)."""
        for size in range(min(len(data), self.longest - 1), 0, -1):
            if data[-size] not in self._first_bytes:
                continue
            tail = data[-size:]
            index = bisect.bisect_left(self._sorted, tail)  # the first form >= tail starts with it, if any does
            if index < len(self._sorted) and self._sorted[index].startswith(tail):
                return size
        return 0

    def redact(self, data: bytes) -> tuple[bytes, int]:
        if self._pattern is None or not data:
            return data, 0
        return self._pattern.subn(self.marker, data)

    def stream(self) -> StreamRedactor:
        """A scrubber for one body that arrives in chunks (see :class:`StreamRedactor`)."""
        return StreamRedactor(self)

    def redact_text(self, text: str) -> tuple[str, int]:
        data, count = self.redact(text.encode("utf-8", "surrogateescape"))
        return data.decode("utf-8", "surrogateescape"), count

    def __repr__(self) -> str:
        return f"Redactor({self.marker.decode()})"


class StreamRedactor:
    """Scrubs a body chunk by chunk, holding back only what could be the start of a secret.

    Every complete form in what has arrived is replaced at once. Of the rest, only the end that
    is the beginning of some form (at most ``longest - 1`` bytes) is carried over to the next
    chunk, so a secret split across chunks (or server-sent events) is still caught, an event
    that ends in ordinary text is passed on without waiting for the next one, and memory stays
    one chunk plus the window.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pending = b""
        self.count = 0

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        pattern = self._redactor._pattern
        if pattern is None:
            self._pending = b""
            return data
        out: list[bytes] = []
        emitted = 0
        for match in pattern.finditer(data):
            out.append(data[emitted : match.start()])
            out.append(self._redactor.marker)
            self.count += 1
            emitted = match.end()
        rest = data[emitted:]
        hold = self._redactor.held_back(rest)
        out.append(rest[: len(rest) - hold])
        self._pending = rest[len(rest) - hold :]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the body, scrubbed: call once the body has ended."""
        data, count = self._redactor.redact(self._pending)
        self._pending = b""
        self.count += count
        return data
