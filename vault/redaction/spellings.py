"""Spellings: each way a reflected secret is written back, as the encoders of real frameworks write it.

An upstream that echoes a key rarely echoes it verbatim: Python's ``quote()`` leaves ``/`` alone,
``encodeURI`` leaves ``+`` and ``=``, Go's templates write ``+`` as ``&#43;``, Mustache writes
``/`` as ``&#x2F;``, PHP's ``json_encode`` writes ``/`` as ``\\/``, Gson writes ``=`` as
``\\u003d``. Each encoder escapes a *class* of characters (every ``/``, every ``=``), so a secret
with a few distinct escapable characters (a base64 key has ``/``, ``+`` and ``=``) is expanded
into every mixture of escaped classes; one with more is expanded as the encoders in the tables
below write it. A mixture chosen per *character* (one ``\\u002d`` among plain ``-``) has too many
spellings to list: :mod:`vault.redaction_views` finds those in bodies by decoding them.

Escapes outside the web's encodings are listed too, since an upstream quotes a key it rejects in
whatever text it writes: a backslash before punctuation (``re.escape``, Markdown, Lucene), C and
Perl octal (``\\055``), Python's ``\\U0000002d``, quoted-printable (``=2D``) and zero-padded
character references (``&#x000002d;``: a few paddings, of one class or all punctuation).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import string
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations

MIN_FORM_LENGTH = 4  # shorter fragments would scrub ordinary text
MAX_CLASSES = 4  # up to this many distinct escapable characters, every mixture of escaped ones is a form

ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
URL_NEVER_ESCAPED = ALPHANUMERIC | frozenset("-._")

# What URL encoders leave as it is, besides letters, digits and "-._".
URL_LITERALS: Mapping[str, str] = {
    "RFC 3986 unreserved: Python quote(safe=''), quote_plus, PHP rawurlencode, Go QueryEscape": "~",
    "Python quote() with its default safe='/'": "~/",
    "JavaScript encodeURIComponent": "~!*'()",
    "JavaScript encodeURI": "~!*'();,/?:@&=+$#",
    "form-urlencoded: WHATWG URLSearchParams, Java URLEncoder, Ruby encode_www_form": "*",
    "PHP urlencode": "",
    "Go url.PathEscape": "~$&+:=@",
    "requests requote_uri": "~!#$%&'()*+,/:;=?@[]",
}

# What JSON encoders escape as \uXXXX beyond the standard escapes, to make JSON safe inside HTML.
JSON_HEX_ESCAPED: Mapping[str, str] = {
    "Go encoding/json, Rails, Django json_script": "<>&\u2028\u2029",
    "Gson": "<>&='",
    "PHP json_encode with JSON_HEX_TAG|AMP|APOS|QUOT": "<>&'\"",
}

_BASIC = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# How HTML escapers write the characters they escape.
HTML_ESCAPERS: Mapping[str, Mapping[str, str]] = {
    "html.escape(quote=False), XML text": _BASIC,
    "Python html.escape, React, Django": {**_BASIC, '"': "&quot;", "'": "&#x27;"},
    "MarkupSafe (Jinja2, Flask), Go html.EscapeString, OWASP Java Encoder": {**_BASIC, '"': "&#34;", "'": "&#39;"},
    "Go html/template": {**_BASIC, '"': "&#34;", "'": "&#39;", "+": "&#43;"},
    "Ruby ERB, Rails, lodash escape": {**_BASIC, '"': "&quot;", "'": "&#39;"},
    "Handlebars": {**_BASIC, '"': "&quot;", "'": "&#x27;", "`": "&#x60;", "=": "&#x3D;"},
    "Mustache.js": {**_BASIC, '"': "&quot;", "'": "&#39;", "/": "&#x2F;", "`": "&#x60;", "=": "&#x3D;"},
    "PHP htmlspecialchars": {**_BASIC, '"': "&quot;", "'": "&#039;"},
    "PHP htmlspecialchars ENT_HTML5, XML attributes": {**_BASIC, '"': "&quot;", "'": "&apos;"},
}
NUMERIC_STYLES = ("&#{};", "&#x{:x};", "&#x{:X};")  # decimal, hex, upper-case hex character references
# Zero-padded references (XML writers, hand-rolled escapers): listed for one class or every character only.
PADDED_STYLES = ("&#x{:04x};", "&#x{:04X};", "&#x{:07x};", "&#x{:08x};", "&#{:04};", "&#{:08};")
ESAPI_LITERALS = ALPHANUMERIC | frozenset(",.-_ ")  # OWASP ESAPI encodeForHTML: &#xhh; for the rest

Escape = Callable[[str], str]

# What a quoted-printable reader takes for an escape, where that is unambiguous (space, punctuation,
# bytes past ASCII, soft line breaks; never a letter or a digit): read in a view of its own.
QUOTED_PRINTABLE_ESCAPE = re.compile(rb"=(?:2[0-9A-F]|3[A-F]|40|5[B-F]|60|7[B-E]|[89A-F][0-9A-F]|\r?\n)")

# What backslash escapers put a backslash before (every punctuation character too: JavaScript
# identity escapes, shells).
BACKSLASHED: Mapping[str, str] = {
    "Python re.escape (3.7 and later)": "()[]{}?*+-|^$\\.&~# \t\n\r\v\f",
    "Markdown escapers (python-markdown, turndown)": "\\`*_{}[]()#+-.!",
    "Lucene QueryParser.escape, Elasticsearch": '\\+-!():^[]"{}~*?|&/',
}
# Escapes of a class of characters in program text and mail: (escape, what its encoders escape).
TEXT_ESCAPES: Mapping[str, tuple[Escape, Iterable[str]]] = {
    "a backslash before the character": (lambda c: "\\" + c, BACKSLASHED.values()),
    "C and Perl octal, per byte": (lambda c: "".join(f"\\{b:03o}" for b in c.encode()), ()),
    "Python \\U, lower-case hex": (lambda c: f"\\U{ord(c):08x}", ()),
    "Python \\U, upper-case hex": (lambda c: f"\\U{ord(c):08X}", ()),
    "quoted-printable, per byte (Python quopri escapes '=')": (
        lambda c: "".join(f"={b:02X}" for b in c.encode()),
        ("=",),
    ),
}


def forms_of(value: str) -> set[bytes]:
    """All spellings of ``value`` that redaction looks for (the tables above; docs/security-model.md)."""
    raw = value.encode("utf-8")
    texts = {value} | _percent_forms(value) | _json_forms(value) | _html_forms(value)
    texts |= {text.replace("/", "\\/") for text in texts if "/" in text}  # PHP json_encode escapes every /
    texts |= _text_escape_forms(value)
    forms = {text.encode("utf-8") for text in texts}
    forms |= {raw.hex().encode(), raw.hex().upper().encode()}
    forms |= _base64_forms(raw) | _base32_forms(raw)
    forms |= {form.replace(b"/", b"\\/") for form in _base64_forms(raw) if b"/" in form}
    forms |= _quoted_printable_readings(raw)
    return {form for form in forms if len(form) >= MIN_FORM_LENGTH}


def _mixtures(chars: Iterable[str], known: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    """Which of ``chars`` an encoder escapes: any mixture of a few, else what the ``known`` encoders escape."""
    chars = frozenset(chars)
    if len(chars) <= MAX_CLASSES:
        ordered = sorted(chars)
        return {frozenset(mixture) for size in range(len(ordered) + 1) for mixture in combinations(ordered, size)}
    return {chars & frozenset(escaped) for escaped in known} | {chars, frozenset()}


def _each_once(escape: Escape) -> Escape:
    """``escape`` remembering what it wrote for each character, for the many mixtures of one secret
    spelled with it (kept as long as the caller keeps it: one secret's forms)."""
    return functools.cache(escape)


def _spell(value: str, escaped: frozenset[str], escape: Escape, plain: Escape = str) -> str:
    """``value`` with ``escaped`` characters escaped, the others written plain: each distinct character
    is spelled once (a key repeats its few characters, and a service's redactor is built from ~60 spellings)."""
    spelled = {c: escape(c) if c in escaped else plain(c) for c in set(value)}
    return "".join([spelled[c] for c in value])


def _percent(upper: bool) -> Escape:
    digits = "%{:02X}" if upper else "%{:02x}"
    return lambda c: "".join(digits.format(byte) for byte in c.encode("utf-8"))


def _percent_forms(value: str) -> set[str]:
    """Percent-encodings: every mixture of escaped classes, once and twice encoded, space as + or %20."""
    chars = set(value) - URL_NEVER_ESCAPED
    known = [frozenset(chars - set(literal)) for literal in URL_LITERALS.values()]
    mixtures = _mixtures(chars, known) | {frozenset(value)}  # and every byte, letters too
    upper, lower = _each_once(_percent(True)), _each_once(_percent(False))
    forms = {_spell(value, escaped, escape) for escaped in mixtures for escape in (upper, lower)}
    forms |= {_spell(value, escaped, upper).replace("%", "%25") for escaped in known if escaped}
    return forms | {form.replace("%20", "+") for form in forms if "%20" in form}


def _u_escape(upper: bool) -> Escape:
    digits = "\\u{:04X}" if upper else "\\u{:04x}"
    return lambda c: "".join(digits.format(unit) for unit in _utf16_units(c))


def _utf16_units(c: str) -> list[int]:
    data = c.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2]) for i in range(0, len(data), 2)]


def _json_char(ensure_ascii: bool) -> Escape:
    return lambda c: json.dumps(c, ensure_ascii=ensure_ascii)[1:-1]


def _json_forms(value: str) -> set[str]:
    """JSON string contents: standard escapes (ASCII-only or not) plus every mixture of \\uXXXX-escaped classes."""
    mixtures = _mixtures(set(value) - ALPHANUMERIC, JSON_HEX_ESCAPED.values()) | {frozenset(value)}
    escapes = [_each_once(_u_escape(upper)) for upper in (False, True)]
    plains = [_each_once(_json_char(ensure_ascii)) for ensure_ascii in (True, False)]
    return {_spell(value, escaped, escape, plain) for escaped in mixtures for escape in escapes for plain in plains}


def _numeric_reference(style: str) -> Escape:
    return lambda c: style.format(ord(c))


def _html_forms(value: str) -> set[str]:
    """HTML character references as escapers write them, and every mixture of numeric ones."""
    forms = {_spell(value, frozenset(table), table.__getitem__) for table in HTML_ESCAPERS.values()}
    forms.add(_spell(value, frozenset(value) - ESAPI_LITERALS, _esapi))
    chars = set(value) - ALPHANUMERIC
    known = [table.keys() for table in HTML_ESCAPERS.values()]
    mixtures = _mixtures(chars, known) | {frozenset(value)}
    references = [_each_once(_numeric_reference(style)) for style in NUMERIC_STYLES]
    return forms | {_spell(value, mixture, reference) for mixture in mixtures for reference in references}


def _text_escape_forms(value: str) -> set[str]:
    """Program-text and mail escapes of punctuation: every mixture of escaped classes (or what the
    known escapers escape); zero-padded references for one class or all punctuation (never every
    character: the longest form sets the window a stream scan holds back)."""
    chars = set(value) - ALPHANUMERIC
    forms = {
        _spell(value, escaped, escape)
        for escape, known in TEXT_ESCAPES.values()
        for escaped in _mixtures(chars, [frozenset(k) for k in known])
    }
    padded = [frozenset(chars)] + [frozenset(c) for c in chars if len(chars) <= MAX_CLASSES]
    return forms | {_spell(value, escaped, _numeric_reference(style)) for escaped in padded for style in PADDED_STYLES}


def _quoted_printable_readings(raw: bytes) -> set[bytes]:
    """A secret that itself holds "=" and two hex digits (``…/=200/``), written as it is beside
    characters escaped one by one (``…\\/\\=200=2F``), is what a quoted-printable reader turns into
    ``…/ 0/``: each such reading, for every mixture of its "=XX" taken as escapes (or all of them),
    if at least half as long as the secret (``=20=20=20…`` would read as a run of spaces)."""
    escapes = [match.span() for match in QUOTED_PRINTABLE_ESCAPE.finditer(raw)]
    if len(escapes) > MAX_CLASSES:
        chosen: list[tuple[tuple[int, int], ...]] = [tuple(escapes)]
    else:
        chosen = [mixture for size in range(1, len(escapes) + 1) for mixture in combinations(escapes, size)]
    readings = set()
    for mixture in chosen:
        parts, last = [], 0
        for start, end in mixture:
            digits = raw[start + 1 : end]
            parts += [raw[last:start], b"" if digits.strip() == b"" else bytes([int(digits, 16)])]
            last = end
        reading = b"".join(parts) + raw[last:]
        if 2 * len(reading) >= len(raw):
            readings.add(reading)
    return readings


def _esapi(c: str) -> str:
    return _BASIC.get(c) or ("&quot;" if c == '"' else f"&#x{ord(c):x};")


def _aligned_forms(raw: bytes, encoders: Iterable[Callable[[bytes], bytes]], group: int, bits: int) -> set[bytes]:
    """The part of an encoded stream fixed by ``raw`` alone, at each of the ``group`` byte alignments.

    An encoder writes ``bits`` bits per character; characters that also hold bits of the bytes
    around ``raw`` vary with them and are cut off."""
    forms = set()
    for shift in range(group):
        for encode in encoders:
            encoded = encode(b"\0" * shift + raw).rstrip(b"=")
            start = -(-8 * shift // bits)  # ceil
            end = 8 * (shift + len(raw)) // bits
            forms.add(encoded[start:end])
    return forms


def _base64_forms(raw: bytes) -> set[bytes]:
    return _aligned_forms(raw, (base64.b64encode, base64.urlsafe_b64encode), 3, 6)


def _base32_forms(raw: bytes) -> set[bytes]:
    """Upper case only, as RFC 4648 writes it: lower-case forms begin with the letters of ordinary text,
    where the ``re`` engine would try each of them (it then scanned three times slower)."""
    return _aligned_forms(raw, (base64.b32encode,), 5, 5)
