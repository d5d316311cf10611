from __future__ import annotations

import gzip
import re

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from clavis_mcp.addons.flowmeta import REFUSED_HEADER, SERVICE
from clavis_mcp.addons.request_policy import RequestPolicy, normalise_path
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import make_service

SECRET = "sk-policy-0123456789abcdef"

NORMALISED = [
    ("plain", "/v1/models", "/v1/models"),
    ("dot-dot-escapes-prefix", "/allowed/../admin", "/admin"),
    ("encoded-dot-dot", "/allowed/%2e%2e/admin", "/admin"),
    ("upper-encoded-dot-dot", "/allowed/%2E%2E/admin", "/admin"),
    ("mixed-encoded-dot", "/allowed/.%2e/admin", "/admin"),
    ("double-slash", "//admin", "/admin"),
    ("many-slashes", "/v1///models", "/v1/models"),
    ("single-dot", "/v1/./models", "/v1/models"),
    ("dot-dot-above-root", "/../../etc", "/etc"),
    ("trailing-slash-kept", "/v1/", "/v1/"),
    ("trailing-dot-dot", "/v1/models/..", "/v1/"),
    ("root", "/", "/"),
    ("other-escapes-kept", "/v1/a%20b", "/v1/a%20b"),
]


@pytest.mark.parametrize(("path", "expected"), [c[1:] for c in NORMALISED], ids=[c[0] for c in NORMALISED])
def test_normalise_path(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["/allowed%2f..%2fadmin", "/allowed%2F../admin", "/allowed\\..\\admin", "/a%5cb", "/a%00b", "/a b", "relative"],
    ids=["encoded-slash", "encoded-slash-upper", "backslash", "encoded-backslash", "nul", "space", "relative"],
)
def test_ambiguous_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        normalise_path(path)


KEPT = [
    ("utf-8-escape", "/v1/caf%c3%a9", "/v1/caf%c3%a9"),
    ("encoded-percent", "/v1/100%25", "/v1/100%25"),
    ("encoded-percent-then-letters", "/v1/100%25zz", "/v1/100%25zz"),
    ("dot-file", "/v1/.well-known/x", "/v1/.well-known/x"),
    ("dots-inside-a-name", "/v1/a..b", "/v1/a..b"),
]


@pytest.mark.parametrize(("path", "expected"), [c[1:] for c in KEPT], ids=[c[0] for c in KEPT])
def test_plain_spellings_near_the_refused_ones_are_kept(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


# Spellings a server reads as another path than the one judged (SECURITY-CASES principle 41).
BYPASSES = [
    ("dot-dot-path-parameter", "/v1/public/..;/admin", "path parameter"),
    ("encoded-dot-dot-path-parameter", "/v1/public/%2e%2e;/admin", "path parameter"),
    ("path-parameters-with-values", "/v1/public/..;x=1/..;/internal", "path parameter"),
    ("single-dot-path-parameter", "/v1/public/.;/x", "path parameter"),
    ("empty-segment-path-parameter", "/v1/public/;/../admin", "path parameter"),
    ("path-parameter-in-a-name", "/v1/public;x/y", "path parameter"),
    ("encoded-semicolon", "/v1/public/..%3b/admin", "path parameter"),
    ("encoded-semicolon-upper", "/v1/public/..%3B/admin", "path parameter"),
    ("double-encoded-dot-dot", "/v1/public/%252e%252e/admin", "double-encoded"),
    ("double-encoded-dot-dot-upper", "/v1/public/%252E%252E/admin", "double-encoded"),
    ("double-encoded-slash", "/v1/public%252f..%252fadmin", "double-encoded"),
    ("double-encoded-backslash", "/v1/public%255c..%255cadmin", "double-encoded"),
    ("double-encoded-semicolon", "/v1/public/..%253b/admin", "double-encoded"),
    ("triple-encoded-dot", "/v1/public/%25252e%25252e/admin", "double-encoded"),
    ("overlong-dot", "/v1/public/%c0%ae%c0%ae/admin", "overlong"),
    ("overlong-dot-upper", "/v1/public/%C0%AE%C0%AE/admin", "overlong"),
    ("overlong-slash", "/v1/public%c0%af..%c0%afadmin", "overlong"),
    ("overlong-backslash", "/v1/public%c1%9c..%c1%9cadmin", "overlong"),
    ("overlong-dot-three-bytes", "/v1/public/%e0%80%ae%e0%80%ae/admin", "overlong"),
    ("overlong-dot-four-bytes", "/v1/public/%f0%80%80%ae%f0%80%80%ae/admin", "overlong"),
    ("raw-overlong-bytes", "/v1/public/\udcc0\udcae\udcc0\udcae/admin", "overlong"),
    ("iis-u-escape", "/v1/public/%u002e%u002e/admin", "two-digit escape"),
    ("bare-percent", "/v1/100%", "two-digit escape"),
    ("fullwidth-dots", "/v1/public/%ef%bc%8e%ef%bc%8e/admin", "U+FF0E"),
    ("two-dot-leader", "/v1/public/%e2%80%a5/admin", "U+2025"),
    ("fullwidth-solidus", "/v1/public%ef%bc%8f..%ef%bc%8fadmin", "U+FF0F"),
    ("fullwidth-reverse-solidus", "/v1/public%ef%bc%bc..%ef%bc%bcadmin", "U+FF3C"),
    ("division-slash", "/v1/public%e2%88%95..%e2%88%95admin", "U+2215"),
    ("raw-fullwidth-dots", "/v1/public/\uff0e\uff0e/admin", "U+FF0E"),
    ("dot-dot-trailing-space", "/v1/public/..%20/admin", "dots and spaces"),
    ("encoded-dot-dot-trailing-space", "/v1/public/%2e%2e%20/admin", "dots and spaces"),
    ("three-dots", "/v1/public/.../admin", "dots and spaces"),
    ("dot-dot-tab", "/v1/public/..%09/admin", "control character"),
    ("dot-dot-newline", "/v1/public/..%0a/admin", "control character"),
    ("encoded-delete", "/v1/public/..%7f/admin", "control character"),
]


@pytest.mark.parametrize(("path", "reason"), [c[1:] for c in BYPASSES], ids=[c[0] for c in BYPASSES])
def test_path_policy_bypass_spellings_are_refused(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        normalise_path(path)


def judged(vault: Vault, methods: tuple[str, ...], request: http.Request) -> http.HTTPFlow:
    """``request`` after the policy of a service limited to ``methods`` has seen it."""
    vault.add_service(make_service("svc", "api.example.com", methods=methods), validate_secret(SECRET))
    flow = tflow.tflow(req=request)
    flow.metadata[SERVICE] = "svc"
    addon = RequestPolicy(vault)
    with taddons.context(addon):
        addon.request(flow)
    return flow


def post(
    path: bytes = b"/v1/items", headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> http.Request:
    return tutils.treq(method=b"POST", path=path, headers=headers or [], content=body)


FORM = (b"Content-Type", b"application/x-www-form-urlencoded")
OVERRIDES = [
    ("x-http-method-override", post(headers=[(b"X-HTTP-Method-Override", b"DELETE")])),
    ("x-http-method", post(headers=[(b"X-HTTP-Method", b"DELETE")])),
    ("x-method-override", post(headers=[(b"X-Method-Override", b"DELETE")])),
    ("override-header-with-underscores", post(headers=[(b"X_HTTP_Method_Override", b"delete")])),
    ("override-list", post(headers=[(b"X-HTTP-Method-Override", b"POST, DELETE")])),
    ("query-parameter", post(path=b"/v1/items?_method=DELETE")),
    ("form-field", post(headers=[FORM], body=b"name=x&_method=DELETE")),
    ("json-member", post(headers=[(b"Content-Type", b"application/json")], body=b'{"_method": "DELETE"}')),
]


@pytest.mark.parametrize("request_", [c[1] for c in OVERRIDES], ids=[c[0] for c in OVERRIDES])
def test_method_override_naming_a_refused_method_is_refused(vault: Vault, request_: http.Request) -> None:
    flow = judged(vault, ("GET", "POST"), request_)
    assert flow.response is not None and flow.response.status_code == 405
    assert "asks for DELETE" in flow.response.headers[REFUSED_HEADER]


def test_method_override_naming_an_allowed_method_passes(vault: Vault) -> None:
    flow = judged(vault, ("GET", "POST"), post(headers=[(b"X-HTTP-Method-Override", b"GET")]))
    assert flow.response is None and flow.request.headers["X-HTTP-Method-Override"] == "GET"


def test_method_overrides_are_left_alone_without_a_method_policy(vault: Vault) -> None:
    flow = judged(vault, (), post(b"/v1?_method=DELETE", [(b"X-HTTP-Method-Override", b"DELETE")]))
    assert flow.response is None and flow.request.headers["X-HTTP-Method-Override"] == "DELETE"


def test_a_compressed_form_too_large_to_judge_under_a_method_policy_is_refused(vault: Vault) -> None:
    body = gzip.compress(b"_method=GET&pad=" + b"a" * 70_000)
    request = post(headers=[FORM, (b"Content-Encoding", b"gzip")], body=body)
    flow = judged(vault, ("GET", "POST"), request)
    assert flow.response is not None and flow.response.status_code == 415


def test_an_override_that_is_no_method_token_is_not_echoed(vault: Vault) -> None:
    flow = judged(vault, ("GET",), tutils.treq(method=b"GET", path=b"/v1?_method=%0d%0aX-Evil:%201"))
    assert flow.response is not None and "asks for another method" in flow.response.headers[REFUSED_HEADER]
