"""Header reads and removals in one pass over a message's raw fields.

mitmproxy's ``Headers.get`` and ``pop`` go through ``MutableMapping``: every call converts the
name, scans all the fields, decodes what it found, and ``pop`` scans them twice more. A stage
that reads four headers paid for four scans on every request (bench/notes.md, issue 18). These
give the same answers (values of repeated fields joined with ``", "``, decoded as mitmproxy
decodes them) from one scan.
"""

from __future__ import annotations

from mitmproxy import http


def header_values(headers: http.Headers, *names: bytes) -> dict[bytes, str]:
    """The value ``headers.get`` would give for each of the lower-case ``names`` present."""
    found: dict[bytes, list[bytes]] = {}
    for name, value in headers.fields:
        key = name.lower()
        if key in names:
            found.setdefault(key, []).append(value)
    return {key: b", ".join(values).decode("utf-8", "surrogateescape") for key, values in found.items()}


def drop_headers(headers: http.Headers, *names: bytes) -> None:
    """Remove every field named one of the lower-case ``names``, in any case."""
    fields = headers.fields
    # A field so named makes its name a substring of the lower-cased names joined, so a block with
    # none of them (the usual case) is cleared by one search per name.
    joined = b"\n".join([name for name, _ in fields]).lower()
    if all(joined.find(name) < 0 for name in names):
        return
    kept = tuple(field for field in fields if field[0].lower() not in names)
    if len(kept) != len(fields):
        headers.fields = kept


def set_identity_body(message: http.Message, body: bytes) -> None:
    """Send ``body`` as it is: what dropping ``Content-Encoding`` and then ``message.set_content``
    do (``Content-Length`` set to its length, in the first such field's place, unless there is a
    ``Transfer-Encoding``), in one pass over the fields; the scrubbed body of every response that
    held a secret goes this way."""
    fields = message.headers.fields
    length = None if b"transfer-encoding" in [name.lower() for name, _ in fields] else str(len(body)).encode()
    kept: list[tuple[bytes, bytes]] = []
    placed = False
    for name, value in fields:
        key = name.lower()
        if key == b"content-encoding" or (key == b"content-length" and length is not None and placed):
            continue
        if key == b"content-length" and length is not None:
            value, placed = length, True
        kept.append((name, value))
    if length is not None and not placed:
        kept.append((b"content-length", length))
    message.headers.fields = tuple(kept)
    message.raw_content = body
