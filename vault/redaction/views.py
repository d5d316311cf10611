"""Decoded views: a secret spelled with a different escape per character, found where a reader decodes it.

:mod:`vault.spellings` lists whole-secret spellings and class-wise mixtures, but an upstream
that escapes single characters of its choosing (``sk\\u002dlive-…``, ``sk%2Dlive-…``,
``sk&#45;live-…``, or all three at once) has more spellings than any list. Its readers undo
them: ``json.loads`` turns ``\\u002d`` into ``-``, a browser (or a model) reads ``&#45;`` as
``-``. So a body with escapes is also read as they would read it: every JSON/JavaScript escape,
program-text escape (C octal ``\\055``, Python's ``\\U0000002d``, a backslash before punctuation),
percent escape, HTML character reference and run of NUL bytes (UTF-16 and UTF-32 text read as
if the NULs were not there) is decoded, and the result decoded again (JSON inside JSON,
``%252D``, ``&amp;#45;``), :data:`DEPTH` times at most; each of these texts is also read as
quoted-printable (``sk=2Dlive-…``), and every view is scanned by the same redactor.
A secret found in a view is replaced in the body at the bytes that spell it, so the rest of the
body (its JSON structure, its HTML) stays as the upstream wrote it. A body in a text encoding
other than UTF-8 (UTF-16/32, which ``json.loads`` detects by itself, or a declared charset) is
transcoded first, scrubbed the same way and, only if something was found, encoded back.

Cost: five ``in`` tests on a body without escapes (0.06 ms per MiB); with them, a regex pass for
each kind present (about 3 ms per MiB) and under a microsecond per escape (each ``=`` counts as
one: ``escape_starts``). Callers bound the size of what they pass.
"""

from __future__ import annotations

import bisect
import codecs
import functools
import html
import json
import re

from .redactor import Redactor, Span, splice
from .spellings import QUOTED_PRINTABLE_ESCAPE

DEPTH = 3  # views decoded from views: JSON inside JSON inside a URL
UTF8_FAMILY = ("utf-8", "ascii")  # codecs whose text the byte scan has already seen as it is
# Codecs that are no HTTP charset (WHATWG has neither) and whose Python decoders are quadratic (1 MiB
# of punycode: 42 s of CPU): they keep ASCII as it is, so the byte scan has seen an ASCII secret.
ASCII_AS_IS = frozenset({"punycode", "idna"})

# Each kind of escape, with the byte that introduces it: a body without that byte is not searched for it.
# Backslash: JSON, JavaScript (\u{…}, \x), Python's \U, C and Perl octal, and a backslash before any
# ASCII punctuation (JavaScript identity escapes, re.escape, Markdown, Lucene; JSON's \" \\ \/).
# Character references may be zero-padded (HTML readers accept any width; no encoder writes more
# than 8 digits): up to 64 zeros, and NULs are taken 64 at a time, so that no escape is longer than
# 80 bytes, and the cache of what each one stands for holds at most 4096 such keys.
_KINDS = (
    (b"\\", rb"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u[0-9a-fA-F]{4}"
              rb"|u\{[0-9a-fA-F]{1,6}\}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-3][0-7]{2}|[bfnrt]|[!-/:-@\[-`{-~])"),
    (b"%", rb"%(?:u[0-9a-fA-F]{4}|[0-9a-fA-F]{2})"),
    (b"&", rb"&(?:#0{0,64}[0-9]{1,7};?|#[xX]0{0,64}[0-9a-fA-F]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};?)"),
    (b"\x00", rb"\x00{1,64}"),
)  # fmt: skip
# Quoted-printable is read in a view of its own, and only where it is unambiguous: "=" and two hex
# digits is also how a query string or a .env file writes a value ("key=12ab…"). Decoded beside the
# kinds above, it would cut the first two characters off a secret written after an "=" in every
# view; decoded where it stands for a letter or a digit (which no encoder escapes), it would do so
# in this view too. So: space, punctuation and bytes past ASCII, and the soft line breaks readers remove.
# A secret holding such an "=XX" itself is also looked for as this view reads it (spellings.py).
ESCAPE_INTRODUCERS = (*(introducer for introducer, _ in _KINDS), b"=")


def escape_starts(body: bytes) -> int:
    """How many bytes of ``body`` could begin an escape: a bound on the escapes its decoded views undo,
    each of which costs up to a microsecond (a body without any costs a tenth of a millisecond per MiB)."""
    return sum(body.count(introducer) for introducer in ESCAPE_INTRODUCERS)


_BACKSLASH = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}


def redact_decoded(redactor: Redactor, data: bytes, charset: str | None = None) -> tuple[bytes, int]:
    """``data`` scrubbed as bytes and as its readers decode it; the count of all redactions.

    ``charset`` is the one the reader will decode with (from ``Content-Type``), if it names one.
    What it returns has nothing left for it to find."""
    if redactor.scanner is None:
        return data, 0
    count = 0
    for encoding in text_encodings(data, charset):  # first, so a marker is written in the body's encoding
        data, found = _redact_transcoded(redactor, data, encoding)
        count += found
    data, found = _redact_text(redactor, data)
    return data, count + found


def _redact_text(redactor: Redactor, data: bytes) -> tuple[bytes, int]:
    """The forms in ``data`` and in its decoded views replaced, each by one marker over whole escapes
    (a form that begins or ends inside an escape would leave half of it, and break a JSON string)."""
    assert redactor.scanner is not None
    spans = redactor.scanner.spans(data)
    pattern = _pattern(data)  # looked for once per text: four scans of the whole body
    if pattern is None and data.find(b"=") < 0:  # no escape at all: no view but the bytes, whose spans are disjoint
        return (splice(data, spans, redactor.marker), len(spans)) if spans else (data, 0)
    if spans and pattern:
        spans = _Escapes(data, pattern).widened(spans)
    spans = _merged(spans + _hidden_spans(redactor, data, pattern))
    return (splice(data, spans, redactor.marker), len(spans)) if spans else (data, 0)


def _merged(spans: list[Span]) -> list[Span]:
    """``spans`` in order, overlapping ones made one."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _pattern(data: bytes) -> re.Pattern[bytes] | None:
    """One regex for the kinds of escape whose introducer ``data`` holds; None if it holds none.

    ``find``, not ``in``: a bytes ``in`` first tries its operand as an integer, and the TypeError it
    raises and clears costs ten times the search of a small body (CPython 3.13)."""
    present = tuple([introducer for introducer, _ in _KINDS if data.find(introducer) >= 0])
    return _combined(present) if present else None


@functools.cache
def _combined(introducers: tuple[bytes, ...]) -> re.Pattern[bytes]:
    return re.compile(b"|".join(pattern for introducer, pattern in _KINDS if introducer in introducers))


def _decoded(data: bytes, pattern: re.Pattern[bytes] | None) -> bytes | None:
    """``data`` (whose escapes ``pattern`` finds: ``_pattern(data)``) with every escape decoded; None
    if that changes nothing. Escapes are taken whole from left to right (``\\%41`` is a backslash
    before ``%``, then ``41``), and an ampersand that names no character stays one: a text of those
    alone decodes to itself, and is not read again, DEPTH times over."""
    if pattern is None:
        return None
    text, count = pattern.subn(_unescape_match, data)
    return text if count and text != data else None


class _Escapes:
    """Where the escapes of a text are, in it and in its decoded text: to map a span found in either
    back onto whole escapes of the text. Built only when a span is found, which is almost never."""

    def __init__(self, data: bytes, pattern: re.Pattern[bytes]) -> None:
        self._source: list[Span] = []
        self._decoded: list[Span] = []
        shift = 0
        for match in pattern.finditer(data):
            start, end = match.span()
            length = len(_unescape_match(match))
            self._source.append((start, end))
            self._decoded.append((start + shift, start + shift + length))
            shift += length - (end - start)

    def widened(self, spans: list[Span]) -> list[Span]:
        """``spans`` of the text grown to the edges of any escape they begin or end inside."""
        return self._mapped(spans, self._source)

    def sources(self, spans: list[Span]) -> list[Span]:
        """Where in the text each of ``spans`` of its decoded text came from."""
        return self._mapped(spans, self._decoded)

    def _mapped(self, spans: list[Span], frame: list[Span]) -> list[Span]:
        """``spans`` in ``frame``'s positions, as positions in the text, escapes whole. Before the first
        escape and between escapes the two texts are the same, shifted by what the escapes shrank."""
        starts = [start for start, _ in frame]
        mapped = []
        for start, end in spans:
            index = bisect.bisect_right(starts, start) - 1  # the last escape at or before start
            if index >= 0:
                inside = start < frame[index][1]
                start = self._source[index][0] if inside else self._source[index][1] + start - frame[index][1]
            index = bisect.bisect_right(starts, end - 1) - 1
            if index >= 0:
                inside = end - 1 < frame[index][1]
                end = self._source[index][1] + (0 if inside else end - frame[index][1])
            mapped.append((start, end))
        return mapped


def _unescape_match(match: re.Match[bytes]) -> bytes:
    return _unescape(match.group())


@functools.lru_cache(maxsize=4096)  # a body repeats a few escapes (&amp; \n %2F) many times
def _unescape(unit: bytes) -> bytes:
    """What one escape stands for, in UTF-8 (the byte itself for ``%XX``, ``\\xXX``, octal and ``=XX``)."""
    match unit[:1], unit[1:2]:
        case b"\\", b"u" if unit[2:3] == b"{":
            text = chr(min(int(unit[3:-1], 16), 0x10FFFF))  # JavaScript's \u{1F600}
        case b"\\", b"u":
            text = json.loads(b'"' + unit + b'"')
        case b"\\", b"U":
            text = chr(min(int(unit[2:], 16), 0x10FFFF))  # Python's \U0001F600
        case b"\\", b"x":
            return bytes([int(unit[2:], 16)])
        case b"\\", digit if digit.isdigit():
            return bytes([int(unit[1:], 8)])  # C and Perl's \055
        case b"\\", escaped:
            return _BACKSLASH.get(escaped, escaped)
        case b"%", b"u":
            text = chr(int(unit[2:], 16))
        case b"%", _:
            return bytes([int(unit[1:], 16)])
        case b"=", b"\r" | b"\n":
            return b""  # a soft line break
        case b"=", _:
            return bytes([int(unit[1:], 16)])
        case b"&", _:
            text = html.unescape(unit.decode("ascii"))
        case _:
            return b""  # NUL bytes: what UTF-16 and UTF-32 put between the letters of ASCII text
    return text.encode("utf-8", "surrogatepass")


def _hidden_spans(redactor: Redactor, data: bytes, pattern: re.Pattern[bytes] | None) -> list[Span]:
    """Where in ``data`` (whose escapes ``pattern`` finds) some decoded text (each decoded from the
    one before), or the quoted-printable view of one of them, holds a form."""
    assert redactor.scanner is not None
    found: list[Span] = []
    texts: list[tuple[bytes, re.Pattern[bytes]]] = []  # each text with escapes, and its pattern
    for _ in range(DEPTH):
        text = _decoded(data, pattern)
        quoted = _decoded(data, QUOTED_PRINTABLE_ESCAPE) if data.find(b"=") >= 0 else None
        for view, escapes in ((text, pattern), (quoted, QUOTED_PRINTABLE_ESCAPE)):
            if view is not None and (spans := redactor.scanner.spans(view)):
                assert escapes is not None
                for source, its_pattern in reversed([*texts, (data, escapes)]):
                    spans = _Escapes(source, its_pattern).sources(spans)
                found += spans
        if text is None:
            break
        assert pattern is not None
        texts.append((data, pattern))
        data, pattern = text, _pattern(text)
    return found


# What ``json.detect_encoding`` needs to see to answer other than UTF-8 (with or without its BOM):
# a first byte of a UTF-16/32 BOM or a NUL, or a NUL second. Other texts are not handed to it.
_WIDE_FIRST = frozenset({0x00, 0xFE, 0xFF})


def text_encodings(data: bytes, charset: str | None) -> list[str]:
    """Encodings other than UTF-8 a reader may decode ``data`` with: the one JSON detects, the declared one."""
    encodings: list[str] = []
    wide = bool(data) and (data[0] in _WIDE_FIRST or data[1:2] == b"\0")
    for name in (json.detect_encoding(data) if wide else None, charset):
        encoding = _other_encoding(name) if name else None
        if encoding is not None and encoding not in encodings:
            encodings.append(encoding)
    return encodings


@functools.lru_cache(maxsize=64)  # the names bodies come with (utf-8 nearly always), not a lookup per body
def _other_encoding(name: str) -> str | None:
    """The codec ``name`` stands for, unless no reader here can decode with it or the byte scan has
    already seen its text (UTF-8's family, :data:`ASCII_AS_IS`)."""
    try:
        encoding = codecs.lookup(name).name
    except LookupError:
        return None  # a charset no reader here can decode
    return None if encoding in ASCII_AS_IS or encoding.startswith(UTF8_FAMILY) else encoding


def _redact_transcoded(redactor: Redactor, data: bytes, encoding: str) -> tuple[bytes, int]:
    try:
        text = data.decode(encoding, "replace")
    except (LookupError, ValueError):  # not a text encoding (base64_codec, ...): no reader decodes text with it
        return data, 0
    clean, count = _redact_text(redactor, text.encode("utf-8", "surrogatepass"))
    if not count:
        return data, 0
    return clean.decode("utf-8", "surrogatepass").encode(encoding, "replace"), count
