"""Redaction: every spelling in which a secret can come back, replaced by a marker.

A reflected secret rarely comes back verbatim: APIs echo it URL-encoded in a link,
base64-encoded inside a token, JSON-escaped in an error body, hex in a debug dump. Each
secret is expanded once into all those forms; one scanner then finds them all in one pass.

The scanner is Hyperscan where the ``hyperscan`` wheel is installed (pyproject.toml declares
it for the platforms that have one): 20 to 50 times faster than ``re`` on every kind of body
(0.1-0.2 ms per MiB of prose, base64, hex or JSON, against 3-5 ms), which matters because
bodies are scrubbed on the proxy's event loop. Elsewhere it is one ``re`` trie pattern of all
the forms. Both find the same spans; the output is built from them in one place (:func:`splice`).
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from ..secret import Secret
from .spellings import forms_of

try:
    import hyperscan
except ImportError:  # no wheel for this platform (see pyproject.toml), or it would not load
    hyperscan = None  # type: ignore[assignment]  # the name stays; None says there is no engine


type _Trie = dict[int | None, _Trie]  # next byte -> the rest; None marks where a form ends


def marker(service: str) -> bytes:
    return f"[REDACTED:{service}]".encode()


def trie_pattern(forms: Iterable[bytes]) -> bytes:
    """One regex for all ``forms`` with shared prefixes factored out, longest match first.

    A flat alternation of 30 forms makes ``re`` try every branch at almost every byte; the
    trie tries one branch per distinct next byte, which doubles throughput (bench/notes.md).
    A form that is a prefix of a longer one becomes a greedy optional tail, so the longer
    form still wins, as it did when the alternation was sorted by length.
    """
    root: _Trie = {}
    for form in forms:
        node = root
        for byte in form:
            node = node.setdefault(byte, {})
        node[None] = {}

    def build(node: _Trie) -> bytes:
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


Span = tuple[int, int]


class Scanner(Protocol):
    def spans(self, data: bytes) -> list[Span]:
        """The forms in ``data``, leftmost-longest: scanning left to right, at the first offset where
        any form matches, the longest form matching there; then on from its end. In order, disjoint."""
        ...


class TrieScanner:
    """The forms as one ``re`` trie pattern (:func:`trie_pattern`): about 300 MB/s, standard library only.

    The fallback where hyperscan is not installed; ``re`` gives leftmost-longest by construction.
    """

    def __init__(self, forms: Iterable[bytes]) -> None:
        self._pattern = re.compile(trie_pattern(forms))

    def spans(self, data: bytes) -> list[Span]:
        return [match.span() for match in self._pattern.finditer(data)]


class HyperscanScanner:
    """The forms as one Hyperscan literal database: 5-12 GB/s whatever the body looks like.

    Hyperscan reports every occurrence of every form, overlapping ones included, by its end
    offset; the start is the end minus the form's length. :meth:`spans` keeps the leftmost-longest
    of them, as ``re`` would. Each occurrence costs a Python callback (about 0.4 µs), so a body
    densely covered by overlapping occurrences (a periodic secret such as ``aaaa…`` inside a run
    of ``a``: one per byte) would be 40 times slower than ``re``. Past :attr:`DENSE` occurrences
    per byte the scan is stopped and the body handed to the ``re`` trie, which steps over each
    match: such a body costs about twice what ``re`` alone would (20-30 ms per MiB against
    10-20), and time stays linear in its length.

    Scratch space must not be shared by two scans at once (python-hyperscan raises
    ``ScratchInUseError``, and releases the GIL while it scans), so each thread gets its own
    clone of the database's scratch (``hs_clone_scratch`` exists for this), kept in a
    ``threading.local``. The database itself is read-only and shared.
    """

    # hs_scan takes an unsigned int length: longer data is scanned in windows that overlap by the
    # longest form less one byte, so each occurrence lies whole in one (or two: then kept once)
    WINDOW = 1 << 31
    DENSE = 1 / 32  # occurrences per byte past which the re trie is faster

    def __init__(self, forms: Iterable[bytes]) -> None:
        self._forms = sorted(forms)
        if not self._forms or any(b"\0" in form for form in self._forms):
            # python-hyperscan measures literals with strlen(): a NUL byte would cut a form short
            raise ValueError("hyperscan needs at least one form, and forms without NUL bytes")
        self._lengths = [len(form) for form in self._forms]
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._database.compile(
            expressions=self._forms,
            ids=list(range(len(self._forms))),
            elements=len(self._forms),
            flags=0,
            literal=True,
        )
        self._local = threading.local()
        self._trie: TrieScanner | None = None  # built on the first dense body

    def _scratch(self) -> hyperscan.Scratch:
        """This thread's scratch space; the database's own is only ever cloned, never scanned with."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._database.scratch.clone()
        return scratch

    def spans(self, data: bytes) -> list[Span]:
        lengths, window, scratch = self._lengths, self.WINDOW, self._scratch()
        limit = int(len(data) * self.DENSE) + 1024
        found: list[tuple[int, int]] = []  # (start, -end): sorted, leftmost first and longest first
        try:
            # the stub types the callback's context as object; it is the _Found passed as context=
            if len(data) <= window:
                context: _Found = (found, lengths, limit, 0)
                self._database.scan(data, _on_match, context=context, scratch=scratch)  # type: ignore[arg-type]
            else:
                overlap = max(lengths) - 1
                for base in range(0, len(data), window):
                    chunk = data[base : base + window + overlap]
                    context = (found, lengths, limit, base)
                    self._database.scan(chunk, _on_match, context=context, scratch=scratch)  # type: ignore[arg-type]
        except hyperscan.ScanTerminated:
            if self._trie is None:
                self._trie = TrieScanner(self._forms)  # two threads may both build it: harmless
            return self._trie.spans(data)
        if not found:
            return []
        found.sort()
        spans: list[Span] = []
        emitted = 0
        for start, negative_end in found:
            if start >= emitted:  # else it overlaps the span taken before it (or is that span again)
                emitted = -negative_end
                spans.append((start, emitted))
        return spans


type _Found = tuple[list[tuple[int, int]], list[int], int, int]  # (start, -end) found, form lengths, limit, offset


def _on_match(form: int, _start: int, end: int, _flags: int, context: _Found) -> bool:
    """Hyperscan's callback for one occurrence: one function for every scan, given what it needs in
    its context (a closure made per scan cost a quarter of the scan of a small body)."""
    found, lengths, limit, base = context
    found.append((base + end - lengths[form], -base - end))
    return len(found) > limit  # True stops the scan


def default_scanner(forms: set[bytes]) -> Scanner:
    """Hyperscan if it is installed and takes these forms, else the ``re`` trie (same spans, slower).

    A compile error falls back too: slower redaction beats a proxy that cannot start.
    """
    if hyperscan is not None:
        try:
            return HyperscanScanner(forms)
        except (ValueError, hyperscan.HyperscanError):  # a NUL in a form; a CPU this build cannot use
            pass
    return TrieScanner(forms)


def _start_windows(forms: Iterable[bytes], most: int) -> list[tuple[int, re.Pattern[bytes]]]:
    """The bytes a form begins with, grouped by how far from the end of a chunk such a form could
    begin (its length, at most ``most``; rounded up to a power of two, so the groups are few), widest
    first. The long forms (every character escaped, 6 bytes per character) begin with ``\\``, ``%``
    or ``&``: one window for all would test every letter of a base64 body 250 bytes back."""
    reach: dict[int, int] = {}
    for form in forms:
        reach[form[0]] = max(reach.get(form[0], 0), min(len(form), most))
    groups: dict[int, list[int]] = {}
    for byte, length in reach.items():
        groups.setdefault(min(1 << (length - 1).bit_length(), most), []).append(byte)
    return [
        (window, re.compile(b"[" + b"".join(re.escape(bytes([byte])) for byte in sorted(group)) + b"]"))
        for window, group in sorted(groups.items(), reverse=True)
    ]


def splice(data: bytes, spans: list[Span], marker: bytes, stop: int | None = None) -> bytes:
    """``data[:stop]`` with each span (in order, disjoint, all before ``stop``) replaced by ``marker``.

    The pieces are views, so a large body is copied once, into the result (slices would copy it
    twice: 0.4 ms for a 1 MiB body on the proxy's event loop, bench/notes.md). Without spans,
    ``data`` itself, or one slice of it: most chunks of a stream hold no secret."""
    if not spans:
        return data if stop is None or stop >= len(data) else data[:stop]
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    emitted = 0
    for start, end in spans:
        parts += (view[emitted:start], marker)
        emitted = end
    parts.append(view[emitted:stop])
    return b"".join(parts)


class Redactor:
    """Scrubs the given secrets (and any extra derived values, such as a basic-auth pair).

    ``scanner`` builds the scanner from the forms: :func:`default_scanner` unless a test asks
    for a given engine. With ``lower_case`` every form is looked for in lower case, for text
    that was lower-cased (a header name after an HTTP/2 hop: base32 or hex in lower case still
    decodes to the secret). Safe to use from several threads at once.
    """

    def __init__(
        self,
        service: str,
        secrets: Iterable[Secret],
        derived: Iterable[str] = (),
        *,
        scanner: Callable[[set[bytes]], Scanner] = default_scanner,
        lower_case: bool = False,
    ) -> None:
        self.marker = marker(service)
        forms: set[bytes] = set()
        for secret in secrets:
            forms |= forms_of(secret.reveal())
        for value in derived:
            forms |= forms_of(value)
        if lower_case:
            forms = {form.lower() for form in forms}
        self.scanner: Scanner | None = scanner(forms) if forms else None
        self.longest = max(map(len, forms), default=0)
        self.shortest = min(map(len, forms), default=0)  # data shorter than this holds no form: not scanned
        self._sorted = sorted(forms)
        # Where a form could begin: a C scan finds them, where a Python loop over every byte of the
        # window cost 3-4 us per streamed chunk (most of an event stream's cost, bench/notes.md).
        self._starts = _start_windows(forms, self.longest - 1)
        self._alphabet = bytes(sorted({byte for form in forms for byte in form}))  # every byte some form has

    def held_back(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` could be the beginning of a form (0 if none).

        Only the end made of bytes that occur in some form can be one: an event stream's chunk
        ends with a newline no form has, and is passed on whole after one C scan of its end."""
        if self.longest < 2:
            return 0
        end = data[1 - self.longest :]
        data = end[len(end.rstrip(self._alphabet)) :]
        if not data:
            return 0
        earliest = len(data)
        for reach, starts in self._starts:  # widest window first; then only before what it found
            for start in starts.finditer(data, max(0, len(data) - reach), earliest):
                if self._begins_a_form(data[start.start() :], longer=False):
                    earliest = start.start()
                    break
        return len(data) - earliest

    def could_grow(self, data: bytes, start: int) -> bool:
        """Whether ``data[start:]`` is shorter than some form that begins with it: a match running
        to the end of a chunk may be the start of that longer form, which the next chunk completes."""
        return len(data) - start < self.longest and self._begins_a_form(data[start:], longer=True)

    def _begins_a_form(self, data: bytes, *, longer: bool) -> bool:
        """Whether some form (with ``longer``: some form longer than ``data``) begins with ``data``."""
        # The first form >= data (> data) in sorted order begins with it, if any does.
        index = (bisect.bisect_right if longer else bisect.bisect_left)(self._sorted, data)
        return index < len(self._sorted) and self._sorted[index].startswith(data)

    def redact(self, data: bytes) -> tuple[bytes, int]:
        if self.scanner is None or len(data) < self.shortest or not data:
            return data, 0
        spans = self.scanner.spans(data)
        return (splice(data, spans, self.marker), len(spans)) if spans else (data, 0)

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

    Every complete form in what has arrived is replaced at once, unless it runs to the end of
    what has arrived and a longer form begins with it. Of the rest, only the end that is the
    beginning of some form (at most ``longest - 1`` bytes) is carried over to the next
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
        redactor = self._redactor
        if redactor.scanner is None or not data:
            self._pending = b""
            return data
        spans = redactor.scanner.spans(data) if len(data) >= redactor.shortest else []  # else no form fits in it
        while spans and redactor.could_grow(data, spans[-1][0]):
            spans.pop()  # held back with the rest: the next chunk may make it a longer form
        self.count += len(spans)
        emitted = spans[-1][1] if spans else 0
        stop = len(data) - redactor.held_back(data[emitted:])
        self._pending = data[stop:]
        return splice(data, spans, redactor.marker, stop)

    def flush(self) -> bytes:
        """The rest of the body, scrubbed: call once the body has ended."""
        data, count = self._redactor.redact(self._pending)
        self._pending = b""
        self.count += count
        return data
