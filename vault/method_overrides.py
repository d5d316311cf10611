"""The methods a request asks for besides its request line: override headers and ``_method`` fields.

Frameworks let a POST stand for another method. Express's method-override, Google APIs and many
gateways read ``X-HTTP-Method-Override``; OData and Microsoft stacks ``X-HTTP-Method``; others
``X-Method-Override``; Rails (Rack), Symfony and Laravel a ``_method`` form field (Laravel a JSON
one too), and some a ``?_method=`` query parameter. Where a service limits its methods, each of
these is a method the request asks for and is judged like the request line.

Names are compared the way servers read them: header names whatever their case and whether they
use '-', '_' or '.' (CGI turns all of them into '_'); field names whatever their case, with the
' ', '.' and '[' that PHP turns into '_', and as ``_method[]`` or ``_method[0]`` (PHP and Rack
read an array of one). Rack reads a POST without ``Content-Type`` as a form, so such a body is
read as one here too, as is a ``text/plain`` one (an HTML form's ``enctype="text/plain"``).

A compressed body is judged decompressed (every coding of a chain, at most
:data:`DECODED_BOUND` bytes): body-parser and others inflate a form or JSON body before reading
its fields. One that decodes to more, or does not decode, cannot be judged. A request whose
``Content-Type`` or ``Content-Encoding`` is ambiguous (two fields, or a list in one
``Content-Type``: Node keeps the first field, others the last or the joined value) is refused by
the proxy before anything judges it (:func:`ambiguous_body_headers`).

A body is read as text in the charset it declares, else in the UTF-16 or UTF-32 its first bytes
show (as JSON readers detect it, RFC 4627), so a NUL between letters hides nothing; a charset
nobody knows cannot be judged and is refused. A JSON key given twice is judged at each occurrence
(parsers differ on which one wins).

Pure and in the vault, so the proxy's stages (``addons``) and the MCP front's question before a
write judge a request alike: the front may not import an addon.
"""

from __future__ import annotations

import codecs
import email.policy
import json
import re
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from itertools import chain
from urllib.parse import unquote_plus

from .approvals import most_dangerous
from .errors import DecodedTooLarge, DecodeError
from .proxy_headers import header_key
from .redaction.decoding import decode_body

OVERRIDE_HEADERS = frozenset(header_key(n) for n in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"))
FIELD = "_method"
FORM, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data"
FORM_LIKE = frozenset({FORM, "", "text/plain"})
_PHP_UNDERSCORED = re.compile(r"[ .\[]")
_ARRAY_SUFFIX = re.compile(r"\[[^\]]*\]$")
_MAY_NAME_FIELD = re.compile(r"(?i)method|\\u")  # JSON can spell any letter of the name as \uXXXX
_CHARSET = re.compile(r"""(?i);\s*charset\s*=\s*["']?([^"';\s]+)""")
UNREADABLE = "*"  # the method judged when the overrides cannot be read: any, so a write
DECODED_BOUND = 64 * 1024  # of a compressed body read for its fields (SECURITY-CASES 44)
SINGLETONS = {header_key(n): n for n in ("Content-Type", "Content-Encoding")}  # read once by every server
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')

type Override = tuple[str, str]  # where the request names the method, the method (upper case)


def overrides_of(
    headers: Iterable[tuple[str, str]], query: str, content_type: str, content_encoding: str, body: bytes | None
) -> list[Override]:
    """Every method a request names besides its request line, from its headers, its query (as sent,
    percent-encoded) and its body; ValueError for a form it cannot read."""
    found = list(header_overrides(headers))
    found += [("the query parameter _method", m) for m in field_overrides(form_fields(query))]
    found += body_overrides(content_type, content_encoding, body)
    return found


def judged_method(
    line: str,
    headers: Iterable[tuple[str, str]],
    query: str,
    content_type: str,
    content_encoding: str,
    body: bytes | None,
) -> tuple[str, str]:
    """What a person is shown of the method (the request line's and every override, as in ``POST
    (X-HTTP-Method-Override: DELETE)``), and the method judged: the most dangerous of them, or
    :data:`UNREADABLE` (any, so a write) where the overrides cannot be read."""
    line = line.upper()
    try:
        overrides = overrides_of(headers, query, content_type, content_encoding, body)
    except ValueError as exc:
        return f"{line} ({exc})", UNREADABLE
    if not overrides:
        return line, line
    named = ", ".join(f"{where.removeprefix('the header ')}: {method}" for where, method in overrides)
    return f"{line} ({named})", most_dangerous(chain([line], (method for _, method in overrides)))


def ambiguous_body_headers(headers: Iterable[tuple[str, str]]) -> str | None:
    """Why a request's body would be read one way here and another by the server, or None: a
    ``Content-Type`` or ``Content-Encoding`` given twice (in any spelling servers read as one
    name), or a ``Content-Type`` listing more than one media type."""
    seen: list[str] = []
    for name, value in headers:
        if "content" not in name.lower():
            continue  # most fields, passed without a regex: every spelling of either name has it
        key = header_key(name)
        if key in SINGLETONS:
            if key in seen:
                return f"more than one {SINGLETONS[key]} header"
            seen.append(key)
            if key == "content-type" and "," in _QUOTED.sub("", value):
                return "a Content-Type header naming more than one media type"
    return None


def header_overrides(fields: Iterable[tuple[str, str]]) -> Iterator[Override]:
    """Methods named by override headers (a comma-separated list names each of its members)."""
    for name, value in fields:
        if header_key(name) in OVERRIDE_HEADERS:
            for method in value.split(","):
                if method.strip():
                    yield f"the header {name}", method.strip().upper()


def field_overrides(fields: Iterable[tuple[str, str]]) -> Iterator[str]:
    for name, value in fields:
        if _PHP_UNDERSCORED.sub("_", _ARRAY_SUFFIX.sub("", name.strip().lower())) == FIELD and value.strip():
            yield value.strip().upper()


def body_overrides(content_type: str, content_encoding: str, body: bytes | None) -> list[Override]:
    """Methods named by a ``_method`` field of a form, multipart or JSON body."""
    fields = _body_fields(content_type, content_encoding, body or b"")
    return [(f"the body field {FIELD}", method) for method in field_overrides(fields)]


def _body_fields(content_type: str, content_encoding: str, body: bytes) -> Iterable[tuple[str, str]]:
    media = content_type.split(";")[0].strip().lower()
    is_json = "/json" in media or "+json" in media
    if not body or not (media in FORM_LIKE or media == MULTIPART or is_json):
        return ()
    body = _decoded(content_encoding, body)
    if media == MULTIPART:
        return _multipart_fields(content_type, body) if _MAY_NAME_FIELD.search(body.decode("latin-1")) else ()
    text = _body_text(content_type, body)
    if media in FORM_LIKE:
        return form_fields(text)
    if is_json and _MAY_NAME_FIELD.search(text):
        return _json_fields(text)
    return ()


def _decoded(content_encoding: str, body: bytes) -> bytes:
    """``body`` with every content coding undone, last applied first, each at most
    :data:`DECODED_BOUND` bytes; ValueError for one that decodes to more or does not decode."""
    try:
        for coding in reversed(content_encoding.lower().split(",")):
            body = decode_body(coding.strip(), body, DECODED_BOUND)
    except DecodedTooLarge:
        raise ValueError("the request has a compressed body that decodes to more than 64 KiB, "
                         "whose _method field clavis-mcp cannot judge; send it uncompressed") from None  # fmt: skip
    except DecodeError:
        raise ValueError("the request has a body that does not decode as its Content-Encoding says, "
                         "whose _method field clavis-mcp cannot judge") from None  # fmt: skip
    return body


def _body_text(content_type: str, body: bytes) -> str:
    """``body`` in its declared charset, else in the encoding its first bytes show (UTF-16/32 by
    BOM or NUL pattern, as JSON readers detect it), else byte for byte; ValueError for an unknown
    charset, which neither we nor the server can read."""
    declared = _CHARSET.search(content_type)
    encoding = declared.group(1) if declared else json.detect_encoding(body)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"the request body declares a charset clavis-mcp does not know ({encoding[:40]!r}), "
                         "so its _method field cannot be judged; send it as UTF-8") from None  # fmt: skip
    if declared is None and encoding == "utf-8":
        return body.decode("latin-1")  # every byte kept for percent-decoding; JSON names are ASCII
    return body.decode(encoding, "replace")


def form_fields(text: str) -> Iterator[tuple[str, str]]:
    """URL-encoded fields, split on '&', on the ';' that older parsers also accept, and on the line
    breaks of a ``text/plain`` form."""
    for part in re.split(r"[&;\r\n]", text):
        name, _, value = part.partition("=")
        yield unquote_plus(name), unquote_plus(value)


def _multipart_fields(content_type: str, body: bytes) -> Iterator[tuple[str, str]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(EmailMessage, policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is not None:
            value = part.get_payload(decode=True)
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else ""
            yield collapse_rfc2231_value(name), text


class _Members(list[tuple[str, object]]):
    """A JSON object as every member it was written with, duplicates included."""


def _json_fields(text: str) -> Iterator[tuple[str, str]]:
    """Top-level string members: Laravel reads ``_method`` from a JSON body as from a form."""
    try:
        document = json.loads(text, object_pairs_hook=_Members)
    except (ValueError, RecursionError):
        return  # the server cannot parse it either
    if isinstance(document, _Members):
        yield from ((k, v) for k, v in document if isinstance(v, str))
