from __future__ import annotations

import gzip

import pytest
from mitmproxy.test import tutils

from clavis_mcp.addons.method_override import body_overrides, header_overrides, requested_overrides

FORM, JSON = "application/x-www-form-urlencoded", "application/json"
MULTIPART = "multipart/form-data; boundary=XyZ"


def multipart(*parts: tuple[str, str]) -> bytes:
    """Parts given as (headers, value); the field name sits wherever the headers put it."""
    return b"".join(f"--XyZ\r\n{head}\r\n\r\n{value}\r\n".encode() for head, value in parts) + b"--XyZ--\r\n"


HEADERS = [
    ("method-override", [("X-HTTP-Method-Override", "DELETE")], [("the header X-HTTP-Method-Override", "DELETE")]),
    ("http-method", [("X-HTTP-Method", "delete")], [("the header X-HTTP-Method", "DELETE")]),
    ("x-method-override", [("X-Method-Override", "PUT")], [("the header X-Method-Override", "PUT")]),
    ("lower-case", [("x-http-method-override", "PATCH")], [("the header x-http-method-override", "PATCH")]),
    ("underscores-cgi-reads-as-dashes", [("X_HTTP_Method_Override", "DELETE")],
     [("the header X_HTTP_Method_Override", "DELETE")]),
    ("list-names-each", [("X-HTTP-Method-Override", "GET, DELETE")],
     [("the header X-HTTP-Method-Override", "GET"), ("the header X-HTTP-Method-Override", "DELETE")]),
    ("empty-value", [("X-HTTP-Method-Override", " ")], []),
    ("ordinary-headers", [("Accept", "DELETE"), ("X-Method", "DELETE")], []),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "found"), [c[1:] for c in HEADERS], ids=[c[0] for c in HEADERS])
def test_header_overrides(fields: list[tuple[str, str]], found: list[tuple[str, str]]) -> None:
    assert list(header_overrides(fields)) == found


BODIES = [
    ("form", FORM, b"a=1&_method=DELETE", ["DELETE"]),
    ("form-with-charset", f"{FORM}; charset=utf-8", b"_method=delete", ["DELETE"]),
    ("form-encoded-name", FORM, b"%5f%6Dethod=DELETE", ["DELETE"]),
    ("form-semicolon-separator", FORM, b"a=1;_method=DELETE", ["DELETE"]),
    ("form-php-dot-name", FORM, b".method=DELETE", ["DELETE"]),
    ("form-php-drops-leading-space", FORM, b"+_method=DELETE", ["DELETE"]),
    ("form-php-bracket-name", FORM, b"[method=DELETE", ["DELETE"]),
    ("form-upper-name", FORM, b"_METHOD=DELETE", ["DELETE"]),
    ("no-content-type-read-as-form-by-rack", "", b"_method=DELETE", ["DELETE"]),
    ("json", JSON, b'{"_method": "DELETE"}', ["DELETE"]),
    ("json-escaped-name", JSON, b'{"\\u005fmethod": "DELETE"}', ["DELETE"]),
    ("json-suffix-type", "application/vnd.api+json", b'{"_method": "PUT"}', ["PUT"]),
    ("json-nested-is-not-read", JSON, b'{"a": {"_method": "DELETE"}}', []),
    ("json-malformed", JSON, b'{"_method": ', []),
    ("json-too-deep", JSON, b"[" * 100_000 + b'"_method"', []),
    ("multipart", MULTIPART, multipart(('Content-Disposition: form-data; name="_method"', "DELETE")), ["DELETE"]),
    ("multipart-name-after-other-header", MULTIPART,
     multipart(('Content-Type: text/plain\r\nContent-Disposition: form-data; name="_method"', "DELETE")), ["DELETE"]),
    ("multipart-other-fields", MULTIPART, multipart(('Content-Disposition: form-data; name="method"', "DELETE")), []),
    ("other-media-type", "application/xml", b"_method=DELETE", []),
    ("no-body", FORM, b"", []),
]  # fmt: skip


@pytest.mark.parametrize(("content_type", "body", "methods"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES])
def test_body_overrides(content_type: str, body: bytes, methods: list[str]) -> None:
    assert [m for _, m in body_overrides(content_type, "", body)] == methods


@pytest.mark.parametrize("content_type", [FORM, MULTIPART], ids=["form", "multipart"])
def test_a_compressed_form_that_decodes_past_64_kib_cannot_be_judged(content_type: str) -> None:
    with pytest.raises(ValueError, match="decodes to more than 64 KiB"):
        body_overrides(content_type, "gzip", gzip.compress(b"_method=DELETE&pad=" + b"a" * 70_000))


def test_query_parameter_is_an_override() -> None:
    request = tutils.treq(method=b"POST", path=b"/v1/items?x=1&_method=DELETE", headers=[], content=b"")
    assert requested_overrides(request) == [("the query parameter _method", "DELETE")]
