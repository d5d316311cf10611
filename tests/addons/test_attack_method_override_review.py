"""Re-attack of issue 12 point 5 (review F4): ``_method`` spellings the first fix did not read.

A JSON body in UTF-16 or UTF-32 (Laravel's ``json_decode`` of a converted body, and every reader
that detects the encoding from the first bytes as RFC 4627 readers do), with or without a declared
charset; a form in a declared UTF-16; a key given twice (some parsers keep the first, others the
last: every occurrence is judged); ``_method[]`` (PHP and Rack read it as ``_method``); a form
sent as ``text/plain`` (an HTML form's ``enctype="text/plain"``, read as a form by lax parsers).
"""

from __future__ import annotations

import pytest
from mitmproxy.test import tutils

from clavis_mcp.addons.method_override import body_overrides, requested_overrides

JSON, FORM = "application/json", "application/x-www-form-urlencoded"
DOC = '{"_method": "DELETE"}'

BYPASSES = [
    ("json-utf16-with-bom", JSON, DOC.encode("utf-16")),
    ("json-utf16le-no-bom", JSON, DOC.encode("utf-16-le")),
    ("json-utf16be-no-bom", JSON, DOC.encode("utf-16-be")),
    ("json-utf32-with-bom", JSON, DOC.encode("utf-32")),
    ("json-utf32le-no-bom", JSON, DOC.encode("utf-32-le")),
    ("json-utf16le-declared", f"{JSON}; charset=utf-16le", DOC.encode("utf-16-le")),
    ("json-utf16-escaped-name", JSON, '{"\\u005fmethod": "DELETE"}'.encode("utf-16-le")),
    ("json-duplicate-key-first", JSON, b'{"_method": "DELETE", "_method": "GET"}'),
    ("form-utf16le-declared", f"{FORM}; charset=utf-16le", "_method=DELETE".encode("utf-16-le")),
    ("form-array-name", FORM, b"_method[]=DELETE"),
    ("form-indexed-name", FORM, b"_method[0]=DELETE"),
    ("text-plain-form", "text/plain", b"_method=DELETE"),
    ("text-plain-form-lines", "text/plain", b"a=1\r\n_method=DELETE\r\n"),
]  # fmt: skip


@pytest.mark.parametrize(("content_type", "body"), [c[1:] for c in BYPASSES], ids=[c[0] for c in BYPASSES])
def test_a_method_override_in_another_encoding_or_spelling_is_judged(content_type: str, body: bytes) -> None:
    assert "DELETE" in [m for _, m in body_overrides(content_type, "", body)]


def test_a_method_override_in_an_array_query_parameter_is_judged() -> None:
    request = tutils.treq(method=b"POST", path=b"/v1/items?_method[]=DELETE", headers=[], content=b"")
    assert requested_overrides(request) == [("the query parameter _method", "DELETE")]


def test_every_occurrence_of_a_duplicated_json_key_is_judged() -> None:
    body = b'{"_method": "GET", "_method": "DELETE", "a": 1}'
    assert [m for _, m in body_overrides(JSON, "", body)] == ["GET", "DELETE"]


def test_a_body_in_a_charset_nobody_knows_is_refused_under_a_method_policy() -> None:
    with pytest.raises(ValueError, match="charset"):
        body_overrides(f"{JSON}; charset=x-unknown-7", "", DOC.encode())
