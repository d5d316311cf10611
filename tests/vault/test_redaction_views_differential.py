"""text_encodings against the code it replaced, which handed every body to json.detect_encoding:
every string of up to five bytes over the bytes that BOMs, NULs and text begin with, and seeded
random bodies, with and without a declared charset."""

from __future__ import annotations

import itertools
import json
import random

from clavis_mcp.vault.redaction.views import _other_encoding, text_encodings

BYTES = (0x00, 0xFE, 0xFF, 0xEF, 0xBB, 0xBF, 0x7B, 0x41, 0x01, 0x0A)
CHARSETS = (None, "utf-8", "utf-16", "utf-32-le", "latin-1", "iso-8859-5", "no-such-charset")


def reference(data: bytes, charset: str | None) -> list[str]:
    encodings: list[str] = []
    for name in (json.detect_encoding(data), charset):
        encoding = _other_encoding(name) if name else None
        if encoding is not None and encoding not in encodings:
            encodings.append(encoding)
    return encodings


def test_text_encodings_are_those_json_detection_gave() -> None:
    rng = random.Random(1909)
    heads = [bytes(p) for n in range(6) for p in itertools.product(BYTES, repeat=n)]
    bodies = heads + [rng.randbytes(rng.randrange(0, 40)) for _ in range(20_000)]
    wide = differ = 0
    for body in bodies:
        for charset in CHARSETS:
            expected = reference(body, charset)
            differ += text_encodings(body, charset) != expected
            wide += charset is None and bool(expected)
    assert differ == 0
    assert wide > 10_000  # many of the heads are UTF-16/32 as JSON detects it
