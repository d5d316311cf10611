from __future__ import annotations

import pytest

from mcp_front.calls import CallRefused, check_target, render_body, returned_headers, split_headers
from tests.conftest import make_service

SERVICE = make_service("openai", "api.openai.com")

REFUSED = [
    ("other-host", "https://evil.test/v1", "not a host of service"),
    ("lookalike", "https://api.openai.com.evil.test/v1", "not a host of service"),
    ("other-port", "https://api.openai.com:8443/v1", "not a host of service"),
    ("plain-http", "http://api.openai.com/v1", "plain http://"),
    ("file-scheme", "file:///etc/passwd", "absolute https://"),
    ("ftp-scheme", "ftp://api.openai.com/", "absolute https://"),
    ("relative", "/v1/models", "absolute https://"),
    ("userinfo", "https://api.openai.com@evil.test/", "user information"),
    ("userinfo-on-own-host", "https://user:pw@api.openai.com/", "user information"),
    ("bad-port", "https://api.openai.com:99999/", "malformed URL"),
    ("numeric-host", "https://2130706433/", "malformed host"),
]


@pytest.mark.parametrize(("url", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_urls_refused_before_any_traffic(url: str, message: str) -> None:
    with pytest.raises(CallRefused, match=message) as caught:
        check_target(SERVICE, "GET", url)
    assert str(caught.value).endswith("accepts https:// URLs on: api.openai.com")


def test_accepted_url_is_canonical() -> None:
    target = check_target(SERVICE, "get", "https://API.OpenAI.com/v1/models?x=1#frag")
    assert (target.host, target.port, target.url) == ("api.openai.com", 443, "https://API.OpenAI.com/v1/models?x=1")


def test_method_outside_the_list_is_refused() -> None:
    with pytest.raises(CallRefused, match="not allowed"):
        check_target(SERVICE, "TRACE", "https://api.openai.com/")


def test_controlled_headers_are_dropped_and_reported() -> None:
    kept, ignored = split_headers(
        {"Authorization": "Bearer mine", "Host": "evil.test", "Proxy-Authorization": "x",
         "X-Clavis-Service": "other", "X-Forwarded-For": "1.2.3.4", "Accept": "application/json"}
    )  # fmt: skip
    assert kept == {"Accept": "application/json"}
    assert sorted(ignored) == ["Authorization", "Host", "Proxy-Authorization", "X-Clavis-Service", "X-Forwarded-For"]


def test_header_with_line_break_is_refused() -> None:
    with pytest.raises(CallRefused):
        split_headers({"X-Note": "a\r\nAuthorization: Bearer x"})


def test_returned_headers_are_an_allowlist() -> None:
    headers = [("Content-Type", "application/json"), ("Set-Cookie", "s=1"), ("x-ratelimit-remaining-requests", "9"),
               ("X-Request-Id", "abc"), ("Server", "x")]  # fmt: skip
    assert returned_headers(headers) == {
        "content-type": "application/json", "x-ratelimit-remaining-requests": "9", "x-request-id": "abc",
    }  # fmt: skip


def test_body_is_parsed_json_or_truncated_text() -> None:
    assert render_body(b'{"a": 1}', "application/json") == ({"a": 1}, False)
    assert render_body(b"hello", "text/plain") == ("hello", False)
    text, truncated = render_body(b"x" * 100, "text/plain", limit=10)
    assert (text, truncated) == ("x" * 10, True)
