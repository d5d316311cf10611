"""A request head handed over in process, judged as h11 judges one (``h11.Request``).

The in-process caller gives the base-URL front a head already split into method, target and
fields; no parser reads it, so the front must refuse what h11 would: a name that is no token, a
value with CR, LF, NUL or edge whitespace, a bad or conflicting ``Content-Length``, a transfer
coding other than one ``chunked``, no ``Host`` or several, a method or target of the wrong
characters. Building an ``h11.Request`` to find out cost about as much as the rest of the
hand-over (its event object, its header list, a formatted message per check); this is the
same verdict in one pass over the fields, which also gives the framing fields the front checks
for smuggling shapes. h11's grammar (``h11/_abnf.py``), and a test holds the two verdicts equal.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")  # method and field name
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_DIGITS = re.compile(rb"[0-9]+")
LENGTH_DIGITS = 20  # h11's longest Content-Length


def framing_of(method: bytes, target: bytes, fields: tuple[tuple[bytes, bytes], ...]) -> list[bytes] | None:
    """The lower-cased names of the head's framing fields (``Content-Length``,
    ``Transfer-Encoding``) in order, or None where h11 would refuse the HTTP/1.1 head."""
    framing: list[bytes] = []
    hosts = 0
    length: bytes | None = None
    chunked = False
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
            return None
        key = name.lower()
        if key == b"host":
            hosts += 1
        elif key == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                return None
            value = lengths.pop()
            if not _DIGITS.fullmatch(value) or len(value) > LENGTH_DIGITS or length not in (None, value):
                return None
            length = value
            framing.append(key)
        elif key == b"transfer-encoding":
            if chunked or value.lower() != b"chunked":
                return None
            chunked = True
            framing.append(key)
    if hosts != 1 or not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        return None
    return framing
