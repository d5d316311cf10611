"""Re-attack of issue 12 point 10 (review F2): spellings real encoders write that redaction missed.

Backslash escapes of punctuation (Python's ``re.escape``, Markdown escapers, Lucene's and
Elasticsearch's query escaping, JavaScript identity escapes), C/Perl octal escapes (``\\055``),
Python's ``\\U0000002d``, quoted-printable (``=2D``) and zero-padded character references
(``&#x000002d;``). The encoders are written from each tool's documentation, not from
:mod:`vault.redaction.spellings`; every test runs on both scanning engines.
"""

from __future__ import annotations

import re

import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.spellings import forms_of

from .test_redaction import engines

SECRETS = {
    "dashes": "sk-test-5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f12",
    "base64-key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCY/EXAMPLEKEY=",
    "underscore": "ghp_other0123456789abcdefABCDEF012345",
    "many-kinds": "pa$$-w_rd.(x)=1/+~*!{y}[z]:@&|#^?",
}
MARKDOWN = set("\\`*_{}[]()#+-.!")  # python-markdown's ESCAPED_CHARS, turndown's escapes
LUCENE = set('\\+-!():^[]"{}~*?|&/')  # Lucene QueryParser.escape


def _backslash(chars: set[str]) -> object:
    return lambda s: "".join("\\" + c if c in chars else c for c in s)


def _punctuation(escape: object) -> object:
    return lambda s: "".join(escape(c) if not c.isalnum() else c for c in s)  # type: ignore[operator]


ENCODERS = {
    "python-re-escape": re.escape,
    "markdown-escape": _backslash(MARKDOWN),
    "lucene-escape": _backslash(LUCENE),
    "javascript-identity-escapes": _punctuation(lambda c: "\\" + c),
    "octal-escapes": _punctuation(lambda c: f"\\{ord(c):03o}"),
    "python-U-escapes": _punctuation(lambda c: f"\\U{ord(c):08x}"),
    "python-U-escapes-upper": _punctuation(lambda c: f"\\U{ord(c):08X}"),
    "quoted-printable": _punctuation(lambda c: f"={ord(c):02X}"),
    "zero-padded-hex-reference": _punctuation(lambda c: f"&#x{ord(c):07x};"),
    "zero-padded-hex-reference-4": _punctuation(lambda c: f"&#x{ord(c):04X};"),
    "zero-padded-decimal-reference": _punctuation(lambda c: f"&#{ord(c):08d};"),
}


ESCAPED = [  # (encoder, secret name): only pairs the escaper changes; the others prove nothing
    pytest.param(encoder, secret, id=f"{name}-{encoder}")
    for encoder, escape in ENCODERS.items()
    for name, secret in SECRETS.items()
    if escape(secret) != secret  # type: ignore[operator]
]


@engines
@pytest.mark.parametrize(("encoder", "secret"), ESCAPED)
def test_a_secret_reflected_through_an_escaper_is_redacted(engine: type, secret: str, encoder: str) -> None:
    spelled = ENCODERS[encoder](secret)  # type: ignore[operator]
    redactor = Redactor("svc", [Secret(secret)], scanner=engine)
    clean, count = redactor.redact(b"key: " + spelled.encode() + b" end")
    assert (clean, count) == (b"key: [REDACTED:svc] end", 1)


@pytest.mark.parametrize("secret", list(SECRETS.values()), ids=list(SECRETS))
def test_the_new_spellings_keep_the_number_of_forms_bounded(secret: str) -> None:
    assert len(forms_of(secret)) <= 400
