from __future__ import annotations

import pytest

from clavis_mcp.mcp_front.call_text import fit_body, sent_size

FITS = [
    ("short-text", "hello", 10, "hello", False),
    ("long-text", "x" * 50, 12, "x" * 12, True),
    ("control-characters-grow-when-escaped", "\x01" * 100, 62, "\x01" * 10, True),
    ("quotes-grow-when-escaped", '"' * 100, 22, '"' * 11, True),
    ("json-that-fits", {"a": [1, 2]}, 100, {"a": [1, 2]}, False),
    ("json-too-big-is-cut-as-text", {"a": "y" * 50}, 20, '{"a":"' + "y" * 11, True),
    ("no-body", None, 0, None, False),
]


@pytest.mark.parametrize(("body", "limit", "fitted", "cut"), [r[1:] for r in FITS], ids=[r[0] for r in FITS])
def test_the_limit_counts_the_body_as_the_model_receives_it(
    body: object, limit: int, fitted: object, cut: bool
) -> None:
    assert fit_body(body, limit) == (fitted, cut)
    assert fitted is None or sent_size(fitted) <= limit
