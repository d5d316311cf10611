"""Attacks on redaction by spelling (issue 12 point 10; SECURITY-CASES 22 and principle 39).

An upstream reflects the key the way some framework writes it (Python's ``quote()`` keeps ``/``,
``encodeURI`` keeps ``+``, Go templates write ``&#43;``, Gson writes ``\\u003d``), or escapes
characters of its own choosing. The encoders below are written from each framework's
documentation, not from :mod:`vault.spellings`, so they check its tables. Every test runs on
both scanning engines.
"""

from __future__ import annotations

import base64
import html
import html.entities
import json
import string
from collections.abc import Callable
from urllib.parse import quote, unquote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction.redactor import HyperscanScanner, Redactor, TrieScanner
from clavis_mcp.vault.redaction.spellings import MAX_CLASSES
from clavis_mcp.vault.redaction.views import redact_decoded

from .test_redaction import engines, needs_hyperscan

KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY="  # a base64 secret key: "/", "+" and "="
PASSWORD = "pa$$ &'w\"rd<x>=1/+~*!(é)`:@;"  # more kinds of character than every mixture covers
MARKER = b"[REDACTED:svc]"

Encoder = Callable[[str], str]


def _percent(c: str, upper: bool = True) -> str:
    return "".join(("%{:02X}" if upper else "%{:02x}").format(byte) for byte in c.encode())


def _keeping(literal: str, space: str = "%20") -> Encoder:
    """A percent-encoder that leaves ASCII letters, digits and ``literal`` as they are."""
    kept = set(string.ascii_letters + string.digits + literal)
    return lambda s: "".join(c if c in kept else space if c == " " else _percent(c) for c in s)


URL_ENCODERS: dict[str, Encoder] = {
    "python-quote-default-safe-slash": quote,
    "js-encodeURIComponent": _keeping("-_.!~*'()"),
    "js-encodeURI": _keeping("-_.!~*'();,/?:@&=+$#"),
    "whatwg-urlsearchparams-java-urlencoder": _keeping("*-._", space="+"),
    "php-urlencode": _keeping("-_.", space="+"),
    "go-url-pathescape": _keeping("-_.~$&+:=@"),
    "double-encoded": lambda s: quote(quote(s, safe=""), safe=""),
    "every-byte-upper-hex": lambda s: "".join(_percent(c) for c in s),
    "every-byte-lower-hex": lambda s: "".join(_percent(c, upper=False) for c in s),
}


def _replacing(table: dict[str, str]) -> Encoder:
    return lambda s: "".join(table.get(c, c) for c in s)


_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
HTML_ENCODERS: dict[str, Encoder] = {
    "python-html-escape": html.escape,
    "markupsafe-jinja2": _replacing({**_HTML, '"': "&#34;", "'": "&#39;"}),
    "go-html-template": _replacing({**_HTML, '"': "&#34;", "'": "&#39;", "+": "&#43;"}),
    "mustache-js": _replacing({**_HTML, '"': "&quot;", "'": "&#39;", "/": "&#x2F;", "`": "&#x60;", "=": "&#x3D;"}),
    "handlebars": _replacing({**_HTML, '"': "&quot;", "'": "&#x27;", "`": "&#x60;", "=": "&#x3D;"}),
    "php-htmlspecialchars": _replacing({**_HTML, '"': "&quot;", "'": "&#039;"}),
    "every-character-decimal": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "every-character-hex": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "every-character-upper-hex": lambda s: "".join(f"&#x{ord(c):X};" for c in s),
}


def _json_hex(chars: str, upper: bool = False) -> Encoder:
    """JSON string contents with ``chars`` written as ``\\uXXXX`` as well (HTML-safe JSON)."""
    digits = "\\u{:04X}" if upper else "\\u{:04x}"
    return lambda s: "".join(digits.format(ord(c)) if c in chars else json.dumps(c)[1:-1] for c in s)


JSON_ENCODERS: dict[str, Encoder] = {
    "go-encoding-json": _json_hex("<>&"),
    "gson": _json_hex("<>&='"),
    "django-json-script": _json_hex("<>&", upper=True),
    "php-json-encode-hex-flags": lambda s: _json_hex("<>&'\"", upper=True)(s).replace("/", "\\/"),
    "javascript-json-stringify": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "every-character-u-escaped": lambda s: "".join(f"\\u{ord(c):04x}" for c in s),
    "every-character-u-escaped-upper": lambda s: "".join(f"\\u{ord(c):04X}" for c in s),
}


def _redacts(engine: type, secret: str, spelled: str) -> None:
    redactor = Redactor("svc", [Secret(secret)], scanner=engine)
    body = b'{"echo": "' + spelled.encode() + b'", "n": 1}'
    clean, count = redactor.redact(body)
    assert count == 1 and MARKER in clean
    assert clean == b'{"echo": "[REDACTED:svc]", "n": 1}'


@engines
def test_quote_with_default_safe_slash_is_redacted(engine: type) -> None:
    """The issue's case: an AWS-style key with "/" and "+" echoed through Python's quote()."""
    _redacts(engine, KEY, quote(KEY))


@engines
@pytest.mark.parametrize("encoder", list(URL_ENCODERS), ids=list(URL_ENCODERS))
def test_url_encodings_that_frameworks_write_are_redacted(engine: type, encoder: str) -> None:
    spelled = URL_ENCODERS[encoder](PASSWORD)
    assert spelled not in (PASSWORD, quote(PASSWORD, safe=""))
    _redacts(engine, PASSWORD, spelled)


@engines
@pytest.mark.parametrize("encoder", list(HTML_ENCODERS), ids=list(HTML_ENCODERS))
def test_html_entities_are_redacted(engine: type, encoder: str) -> None:
    _redacts(engine, PASSWORD, HTML_ENCODERS[encoder](PASSWORD))


@engines
@pytest.mark.parametrize("encoder", list(JSON_ENCODERS), ids=list(JSON_ENCODERS))
def test_json_unicode_escapes_are_redacted(engine: type, encoder: str) -> None:
    spelled = JSON_ENCODERS[encoder](PASSWORD)
    assert spelled != json.dumps(PASSWORD)[1:-1]
    _redacts(engine, PASSWORD, spelled)


@engines
def test_base32_is_redacted_at_every_alignment(engine: type) -> None:
    redactor = Redactor("svc", [Secret(KEY)], scanner=engine)
    for prefix in (b"", b"a", b"ab", b"abc", b"abcd"):
        blob = base64.b32encode(prefix + b"{" + KEY.encode() + b"}")
        clean, count = redactor.redact(b"otpauth://totp/x?secret=" + blob)
        assert count == 1, prefix


@engines
def test_base64_with_json_escaped_slashes_is_redacted(engine: type) -> None:
    """PHP's json_encode writes every "/" of a base64 blob as "\\/"."""
    secret = "sk_live_???????0123456789abcdef"  # "?" makes "/" in base64 at every alignment
    redactor = Redactor("svc", [Secret(secret)], scanner=engine)
    for prefix in (b"", b"u", b"us"):
        blob = base64.b64encode(prefix + b"user:" + secret.encode()).decode()
        body = json.dumps({"token": blob}).replace("/", "\\/").encode()
        assert b"\\/" in body
        clean, count = redactor.redact(body)
        assert count == 1, prefix


_ESCAPABLE = "/+=~!*'()&\"<>-_."
FAMILIES: dict[str, Callable[[str], str]] = {
    "percent": _percent,
    "percent-lower": lambda c: _percent(c, upper=False),
    "json-u": lambda c: f"\\u{ord(c):04x}",
    "json-U": lambda c: f"\\u{ord(c):04X}",
    "decimal-entity": lambda c: f"&#{ord(c)};",
    "hex-entity": lambda c: f"&#x{ord(c):x};",
    "upper-hex-entity": lambda c: f"&#x{ord(c):X};",
}


@st.composite
def _class_mixtures(draw: st.DrawFn) -> tuple[str, str]:
    """A secret with up to MAX_CLASSES kinds of punctuation, and a spelling that escapes some kinds whole."""
    kinds = draw(st.lists(st.sampled_from(_ESCAPABLE), min_size=1, max_size=MAX_CLASSES, unique=True))
    secret = draw(st.text(alphabet=string.ascii_letters + string.digits + "".join(kinds), min_size=12, max_size=40))
    family = draw(st.sampled_from(sorted(FAMILIES)))
    present = sorted(set(secret) & set(kinds) - (set("-_.") if family.startswith("percent") else set()))
    escaped = set(draw(st.lists(st.sampled_from(present), unique=True))) if present else set()
    plain = (lambda c: json.dumps(c)[1:-1]) if family.startswith("json") else str  # JSON escapes '"' anyway
    return secret, "".join(FAMILIES[family](c) if c in escaped else plain(c) for c in secret)


@engines
@settings(max_examples=150, deadline=None)
@given(mixture=_class_mixtures(), before=st.binary(max_size=24), after=st.binary(max_size=24))
def test_every_mixture_of_escaped_kinds_of_character_is_redacted_whole_and_streamed(
    engine: type, mixture: tuple[str, str], before: bytes, after: bytes
) -> None:
    """An encoder escapes kinds of character (every "/", every "="), whichever it picks."""
    secret, spelled = mixture
    redactor = Redactor("svc", [Secret(secret)], scanner=engine)
    body = before + b" " + spelled.encode() + b" " + after
    clean, count = redactor.redact(body)
    assert count >= 1 and spelled.encode() not in clean
    scrubber = redactor.stream()
    streamed = b"".join(scrubber.feed(body[i : i + 5]) for i in range(0, len(body), 5)) + scrubber.flush()
    assert (streamed, scrubber.count) == (clean, count)


# -- escapes chosen per character: the decoded view ---------------------------------------------

SECRET = "sk-live-0123456789abcdef/ABC+xyz=="


def _decoded_redactions(engine: type, body: bytes, charset: str | None = None) -> tuple[bytes, int]:
    return redact_decoded(Redactor("svc", [Secret(SECRET)], scanner=engine), body, charset)


ONE_CHARACTER = {
    "json": b'{"echo":"sk\\u002dlive-0123456789abcdef/ABC+xyz=="}',
    "percent": b"https://x.test/cb?key=sk%2Dlive-0123456789abcdef/ABC+xyz==",
    "html": b'<input value="sk&#45;live-0123456789abcdef/ABC+xyz==">',
    "html-named": b"<p>sk-live-0123456789abcdef&sol;ABC+xyz==</p>",
    "js-hex": b"var k = 'sk\\x2dlive-0123456789abcdef/ABC+xyz==';",
    "js-code-point": b"var k = `sk\\u{2d}live-0123456789abcdef/ABC+xyz==`;",
}


@engines
def test_one_json_escaped_character_is_redacted_in_the_decoded_view(engine: type) -> None:
    clean, count = _decoded_redactions(engine, ONE_CHARACTER["json"])
    assert (clean, count) == (b'{"echo":"[REDACTED:svc]"}', 1)
    assert json.loads(clean) == {"echo": "[REDACTED:svc]"}


@engines
@pytest.mark.parametrize("spelling", list(ONE_CHARACTER), ids=list(ONE_CHARACTER))
def test_one_escaped_character_of_any_kind_is_redacted_in_the_decoded_view(engine: type, spelling: str) -> None:
    clean, count = _decoded_redactions(engine, ONE_CHARACTER[spelling])
    assert count == 1 and MARKER in clean
    assert b"0123456789abcdef" not in clean


NESTED = {
    "json-in-json": b'{"body":"{\\"echo\\":\\"sk\\\\u002dlive-0123456789abcdef\\\\/ABC+xyz==\\"}"}',
    "percent-twice": b"next=%2Fcb%3Fkey%3Dsk%252Dlive-0123456789abcdef%252FABC%252Bxyz%253D%253D",
    "entity-escaped-as-html": b"<pre>sk&amp;#45;live-0123456789abcdef/ABC+xyz==</pre>",
    "percent-inside-json-escape": b'{"u":"sk\\u00252Dlive-0123456789abcdef/ABC+xyz=="}',
}


@engines
@pytest.mark.parametrize("spelling", list(NESTED), ids=list(NESTED))
def test_escapes_decoded_twice_are_redacted_in_the_decoded_view(engine: type, spelling: str) -> None:
    clean, count = _decoded_redactions(engine, NESTED[spelling])
    assert count == 1 and MARKER in clean
    assert b"0123456789abcdef" not in clean


@engines
def test_json_echo_keeps_its_structure_when_rewritten(engine: type) -> None:
    body = (
        json.dumps({"before": 'caf\u00e9 "q" a/b', "echo": "x", "after": [1, "\u2603"], "n": None}, ensure_ascii=True)
        .encode()
        .replace(b'"x"', b'"pre sk\\u002dlive-0123456789abcdef\\/ABC\\u002bxyz== post"')
    )
    clean, count = _decoded_redactions(engine, body)
    assert count == 1
    assert json.loads(clean) == {
        "before": "caf\u00e9 \"q\" a/b", "echo": "pre [REDACTED:svc] post", "after": [1, "\u2603"], "n": None
    }  # fmt: skip


@engines
def test_a_secret_that_begins_inside_an_escape_is_cut_with_the_whole_escape(engine: type) -> None:
    """The byte scan finds "0abc…" from the last digit of "\\u0030": half an escape left behind would
    break the JSON string (and the proxy would relay a body its client cannot parse)."""
    secret = "0abcdef0123456789"
    body = b'{"echo":"\\u0030abcdef0123456789", "n": 1}'
    clean, count = redact_decoded(Redactor("svc", [Secret(secret)], scanner=engine), body)
    assert count == 1
    assert json.loads(clean) == {"echo": "[REDACTED:svc]", "n": 1}


WIDE = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@engines
@pytest.mark.parametrize("encoding", WIDE, ids=WIDE)
def test_json_in_utf16_or_utf32_is_redacted_and_stays_in_its_encoding(engine: type, encoding: str) -> None:
    """json.loads detects UTF-16 and UTF-32 by itself, with or without a byte order mark."""
    body = json.dumps({"echo": SECRET, "ok": True}).encode(encoding)
    clean, count = _decoded_redactions(engine, body)
    assert count == 1
    assert json.loads(clean) == {"echo": "[REDACTED:svc]", "ok": True}


@engines
def test_utf16_text_without_a_byte_order_mark_is_redacted(engine: type) -> None:
    body = ("error: invalid key " + SECRET).encode("utf-16-le")
    clean, count = _decoded_redactions(engine, body)
    assert count == 1 and clean.decode("utf-16-le") == "error: invalid key [REDACTED:svc]"


@engines
def test_utf16_text_cut_at_an_odd_byte_is_redacted_in_the_nul_free_view(engine: type) -> None:
    body = b"\x00" + ("key " + SECRET).encode("utf-16-le")  # no longer valid UTF-16 in either order
    clean, count = _decoded_redactions(engine, body)
    assert count == 1 and b"0\x001\x002\x003" not in clean


@engines
def test_a_declared_utf7_charset_is_decoded_as_its_reader_would(engine: type) -> None:
    """httpx's response.text decodes with the charset the server names, UTF-7 included."""
    body = b"key: +AHM-k-live-0123456789abcdef/ABC+ACs-xyz=="  # "s" and "+" written in UTF-7
    assert body.decode("utf-7") == "key: " + SECRET
    clean, count = _decoded_redactions(engine, body, charset="utf-7")
    assert count == 1 and clean.decode("utf-7") == "key: [REDACTED:svc]"


_NAMES = {
    c: name for name, c in sorted(html.entities.html5.items(), reverse=True) if len(c) == 1 and name.endswith(";")
}
PER_CHARACTER: dict[str, Callable[[str], str]] = {
    "literal": lambda c: c,
    **FAMILIES,
    "named-entity": lambda c: f"&{_NAMES[c]}" if c in _NAMES else c,
}


@st.composite
def _spelled_per_character(draw: st.DrawFn) -> tuple[str, str]:
    secret = draw(st.text(alphabet=string.ascii_letters + string.digits + "-_./+=~", min_size=12, max_size=40))
    ways = draw(st.lists(st.sampled_from(sorted(PER_CHARACTER)), min_size=len(secret), max_size=len(secret)))
    return secret, "".join(PER_CHARACTER[way](c) for way, c in zip(ways, secret, strict=True))


def _what_a_reader_sees(body: bytes) -> str:
    """A reader that parses the JSON, then reads entities and percent escapes."""
    return unquote(html.unescape(json.loads(body)["echo"]))


@engines
@settings(max_examples=200, deadline=None)
@given(spelled=_spelled_per_character(), before=st.text(max_size=16), after=st.text(max_size=16))
def test_escapes_mixed_per_character_are_redacted_in_the_decoded_view(
    engine: type, spelled: tuple[str, str], before: str, after: str
) -> None:
    secret, spelling = spelled
    body = b'{"echo": "' + json.dumps(before)[1:-1].encode() + spelling.encode() + json.dumps(after)[1:-1].encode()
    body += b'", "other": "kept"}'
    # The text around it can merge with its escapes (a '%' before '&#48;' reads as '%0'): then no
    # reader sees this secret, and the example says nothing about redaction.
    assume(secret in _what_a_reader_sees(body))
    redactor = Redactor("svc", [Secret(secret)], scanner=engine)
    clean, count = redact_decoded(redactor, body)
    assert count >= 1
    assert secret not in _what_a_reader_sees(clean)
    assert json.loads(clean)["other"] == "kept"
    assert redact_decoded(redactor, clean) == (clean, 0)  # nothing left for it to find


@needs_hyperscan
@settings(max_examples=200, deadline=None)
@given(spelled=_spelled_per_character(), noise=st.lists(st.sampled_from(["%", "&", "\\", "\x00", "&amp;", "%25", "x"])))
def test_both_engines_rewrite_a_decoded_view_alike(spelled: tuple[str, str], noise: list[str]) -> None:
    secret, spelling = spelled
    body = ("".join(noise) + spelling + "".join(reversed(noise)) + spelling).encode()
    fast, slow = (
        redact_decoded(Redactor("svc", [Secret(secret)], scanner=e), body) for e in (HyperscanScanner, TrieScanner)
    )
    assert fast == slow


BODIES_WITHOUT_SECRETS = {
    "json-escapes": json.dumps({"t": 'caf\u00e9 "q" a/b \u2603', "u": "%2F%2B"}, ensure_ascii=True).encode(),
    "html": b'<a href="/x?a=1&amp;b=%2F">caf&eacute; &#39;q&#39; &unknown; & done</a>',
    "utf16-json": json.dumps({"t": "hello"}).encode("utf-16"),
    "binary": bytes(range(256)) * 4,
}


@engines
@pytest.mark.parametrize("body", list(BODIES_WITHOUT_SECRETS), ids=list(BODIES_WITHOUT_SECRETS))
def test_a_body_without_the_secret_comes_back_byte_for_byte(engine: type, body: str) -> None:
    data = BODIES_WITHOUT_SECRETS[body]
    assert _decoded_redactions(engine, data) == (data, 0)
