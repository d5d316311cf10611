from __future__ import annotations

import hashlib

import pytest

from clavis_mcp.mcp_front.calls import (
    CallLimits,
    Scrubber,
    Target,
    check_method,
    check_target,
    cut_body,
    redirect_target,
    render_body,
    request_body,
    returned_headers,
    shown_headers,
    split_headers,
)
from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import CallRefused, LimitsError
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.service import ServiceRedactor
from tests.conftest import SECRET, make_service

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
    ("control-character", "https://api.openai.com/\r\nHost: evil.test", "control characters"),
    ("space", "https://api.openai.com /v1", "control characters"),
    ("no-host", "https:///v1", "absolute https://"),
    ("javascript", "javascript:alert(1)", "absolute https://"),
    ("data", "data:text/plain,hi", "absolute https://"),
]


@pytest.mark.parametrize(("url", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_urls_refused_before_any_traffic(url: str, message: str) -> None:
    with pytest.raises(CallRefused, match=message) as caught:
        check_target(SERVICE, "GET", url)
    assert str(caught.value).endswith("accepts https:// URLs on: api.openai.com")


@pytest.mark.parametrize("code", [*range(0x21), 0x7F], ids=lambda code: f"U+{code:04X}")
def test_a_space_or_control_character_anywhere_in_the_url_is_refused(code: int) -> None:
    with pytest.raises(CallRefused, match="control characters"):
        check_target(SERVICE, "GET", f"https://api.openai.com/v1?q=a{chr(code)}b")


def test_visible_and_non_ascii_characters_are_not_taken_for_control_characters() -> None:
    printable = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in "#?/\\")
    target = check_target(SERVICE, "GET", f"https://api.openai.com/v1?q={printable}\u00e9\u0080\u00a0")
    assert target.url.endswith("\u00e9\u0080\u00a0")


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


def test_client_address_headers_the_proxy_strips_are_reported_as_ignored_not_listed_as_sent() -> None:
    kept, ignored = split_headers({"X-Real-IP": "10.0.0.1", "True-Client-IP": "10.0.0.2", "Accept": "*/*"})
    assert kept == {"Accept": "*/*"} and sorted(ignored) == ["True-Client-IP", "X-Real-IP"]


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "application/x-www-form-urlencoded", "Content_Type": "application/json"},
     {"Content-Type": "application/x-www-form-urlencoded, application/json"},
     {"Content-Encoding": "gzip", "content.encoding": "br"}],
    ids=["two-content-types", "a-list-in-one", "two-content-encodings"],
)  # fmt: skip
def test_headers_that_a_server_could_read_as_another_body_are_refused_before_anything_is_asked(
    headers: dict[str, str],
) -> None:
    with pytest.raises(CallRefused, match="one Content-Type naming one media type"):
        split_headers(headers)


def test_controlled_headers_are_ignored_whatever_separators_end_or_repeat_in_their_names() -> None:
    """A server may read ``Authorization_`` as ``Authorization`` and ``Host.`` as ``Host``."""
    names = ["Authorization_", "_Host", "Host.", "Proxy_Authorization_", "Content__Length", "X--Clavis-Call"]
    kept, ignored = split_headers({**dict.fromkeys(names, "x"), "Accept": "application/json"})
    assert kept == {"Accept": "application/json"}
    assert sorted(ignored) == sorted(names)


def test_internal_headers_are_ignored_in_any_spelling_and_values_lose_surrounding_spaces() -> None:
    kept, ignored = split_headers({"X_Clavis_Agent": "k", "x.clavis.call": "c", "Accept": " application/json "})
    assert kept == {"Accept": "application/json"}
    assert sorted(ignored) == ["X_Clavis_Agent", "x.clavis.call"]


@pytest.mark.parametrize(
    ("headers", "problem"),
    [({"X Note": "a"}, "not an HTTP token"), ({"X-Note(": "a"}, "not an HTTP token"),
     ({"X-Note": "café"}, "printable ASCII"), ({"X-Note": "a\x01b"}, "printable ASCII")],
    ids=["space-in-name", "separator-in-name", "non-ascii-value", "control-character-value"],
)  # fmt: skip
def test_header_that_is_not_one_plain_field_is_refused(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(CallRefused, match=problem):
        split_headers(headers)


def test_header_with_line_break_is_refused() -> None:
    with pytest.raises(CallRefused):
        split_headers({"X-Note": "a\r\nAuthorization: Bearer x"})


def test_returned_headers_are_an_allowlist() -> None:
    headers = [("Content-Type", "application/json"), ("Set-Cookie", "s=1"), ("x-ratelimit-remaining-requests", "9"),
               ("X-Request-Id", "abc"), ("Server", "x")]  # fmt: skip
    assert returned_headers(headers) == {
        "content-type": "application/json", "x-ratelimit-remaining-requests": "9", "x-request-id": "abc",
    }  # fmt: skip


def scrubber_of(*secrets: str) -> Scrubber:
    """The scrubber of a call during which the service's secret was each of ``secrets`` in turn."""
    return Scrubber.of(
        *(ServiceRedactor(Redactor("openai", [Secret(s)]), Redactor("openai", (), [s.lower()])) for s in secrets)
    )


SCRUBBER = scrubber_of(SECRET)
MARKER = "[REDACTED:openai]"


def render(content: bytes, content_type: str, limit: int = 256 * 1024) -> tuple[object, object, bool]:
    """``content`` rendered as call_service renders it: the gateway keeps the head and what follows it."""
    digest = hashlib.sha256(content).hexdigest()
    return render_body(content[:limit], len(content), digest, content_type, limit, SCRUBBER, content[limit:])[:3]


BODIES = [
    ("json", b'{"a": 1}', "application/json", {"a": 1}, False),
    ("json-suffix-type", b'{"a": 1}', "application/problem+json", {"a": 1}, False),
    ("broken-json-is-text", b'{"a": ', "application/json", '{"a": ', False),
    ("text", b"hello", "text/plain; charset=utf-8", "hello", False),
    ("no-content-type-text", b"hello", "", "hello", False),
    ("empty", b"", "application/octet-stream", "", False),
    ("truncated-text", b"x" * 100, "text/plain", "x" * 10, True),
    ("truncated-json-is-text", b'{"a": "' + b"y" * 100 + b'"}', "application/json", '{"a": "yyy', True),
    (
        "json-escape-rebuilding-the-secret",
        ('{"k": "' + SECRET.replace("-", "\\u002d") + '"}').encode(),
        "application/json",
        {"k": "[REDACTED:openai]"},
        False,
    ),
    (
        "json-key-rebuilding-the-secret",
        ('{"' + SECRET.replace("t", "\\u0074") + '": 1}').encode(),
        "application/json",
        {"[REDACTED:openai]": 1},
        False,
    ),
]


@pytest.mark.parametrize(
    ("content", "content_type", "body", "truncated"), [r[1:] for r in BODIES], ids=[r[0] for r in BODIES]
)
def test_body_is_parsed_json_or_text_cut_at_the_limit(
    content: bytes, content_type: str, body: object, truncated: bool
) -> None:
    assert render(content, content_type, limit=10 if truncated else 1024) == (body, None, truncated)


BINARIES = [
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png"),
    ("octet-stream", b"\x00\x01\x02", "application/octet-stream"),
    ("text-type-but-not-utf8", b"\xff\xfe\x00bad", "text/plain"),
    ("utf16-text-without-bom", "hello".encode("utf-16-le"), "text/plain"),
    ("utf32-json", b'{"a": 1}'.decode().encode("utf-32-le"), "application/json"),
    ("declared-utf16-charset", "hello".encode("utf-16-le"), "text/plain; charset=utf-16le"),
    ("declared-latin1-charset", b"caf\xe9", "text/plain; charset=iso-8859-1"),
]


@pytest.mark.parametrize(("content", "content_type"), [r[1:] for r in BINARIES], ids=[r[0] for r in BINARIES])
def test_binary_bodies_are_summarised_not_dumped(content: bytes, content_type: str) -> None:
    body, binary, truncated = render(content, content_type)
    assert body is None and not truncated and binary is not None
    assert (binary.size, binary.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert binary.content_type == content_type


ESCAPED = SECRET.replace("-", "\\u002d", 1).encode()  # one character escaped: a spelling no list holds
CUTS = [
    ("escaped-secret-across-the-cut-is-found-with-what-follows",
     b"a" * 5 + ESCAPED + b"b" * 10, 5 + len(ESCAPED) - 1, 100, b"a" * 5 + MARKER.encode(), 1),
    ("cut-inside-the-marker", b"a" * 5 + ESCAPED + b"b" * 40, 10, 100, b"aaaaa[REDA", 1),
    ("start-of-a-spelling-whose-end-is-out-of-reach-is-dropped",
     b"a" * 5 + SECRET.encode() + b"b" * 10, 25, 0, b"a" * 5, 0),
    ("a-few-bytes-like-a-start-are-ordinary-text", b"aaaaask-b", 8, 0, b"aaaaask-", 0),
    ("nothing-to-find", b"a" * 30, 10, 5, b"a" * 10, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "limit", "lookahead", "shown", "count"), [r[1:] for r in CUTS], ids=[r[0] for r in CUTS]
)
def test_a_cut_body_never_ends_in_most_of_a_secret(
    content: bytes, limit: int, lookahead: int, shown: bytes, count: int
) -> None:
    assert cut_body(content[:limit], content[limit : limit + lookahead], limit, SCRUBBER) == (shown, count)


def test_text_cut_across_an_escaped_secret_shows_a_marker() -> None:
    content = b"x" * 20 + ESCAPED + b"y" * 1000
    body, binary, truncated = render(content, "text/plain", limit=30)
    assert (body, binary, truncated) == ("x" * 20 + MARKER[:10], None, True)


HEADERS = [
    ("plain-value-kept", [("Location", "/v1/next")], {"location": "/v1/next"}, 0),
    ("percent-escaped-in-a-location", [("Location", "https://x.test/cb?k=" + SECRET.replace("-", "%2D", 1))],
     {"location": f"https://x.test/cb?k={MARKER}"}, 1),
    ("entity-in-a-link", [("Link", f'</n?key={SECRET.replace("-", "&#45;", 1)}>; rel="next"')],
     {"link": f'</n?key={MARKER}>; rel="next"'}, 1),
    ("spelling-in-an-allowlisted-name-drops-the-field",
     [("X-RateLimit-" + SECRET.upper().replace("-", "%2d", 1), "1"), ("Retry-After", "3")], {"retry-after": "3"}, 1),
    ("not-allowlisted-never-shown", [("Set-Cookie", SECRET)], {}, 0),
]  # fmt: skip


@pytest.mark.parametrize(("headers", "shown", "count"), [r[1:] for r in HEADERS], ids=[r[0] for r in HEADERS])
def test_returned_headers_are_scrubbed_as_they_are_read(
    headers: list[tuple[str, str]], shown: dict[str, str], count: int
) -> None:
    assert shown_headers(headers, SCRUBBER) == (shown, count)


def test_the_secret_sent_and_the_one_held_after_the_call_are_both_scrubbed() -> None:
    """A 401 refreshes an OAuth token (or a rotation lands) mid-call: the answer may quote either."""
    new = "sk-test-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    scrubber = scrubber_of(SECRET, new)
    assert scrubber.value(f"{ESCAPED.decode()} {new.replace('-', '%2D', 1)}") == (f"{MARKER} {MARKER}", 2)


def test_an_unchanged_secret_is_scanned_once() -> None:
    redactors = ServiceRedactor(*SCRUBBER.values, *SCRUBBER.names)
    assert Scrubber.of(redactors, redactors) == Scrubber(SCRUBBER.values, SCRUBBER.names)


def test_text_cut_inside_a_multibyte_character_is_still_text() -> None:
    content = "é".encode() * 10  # 20 bytes; a 5-byte cut splits a character
    body, binary, truncated = render(content, "text/plain", limit=5)
    assert binary is None and truncated and body.startswith("éé")


POLICY = make_service("stripe", "api.stripe.com", methods=("GET", "POST"))


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
def test_method_policy_refuses_what_the_service_does_not_allow(method: str) -> None:
    with pytest.raises(CallRefused, match="its method policy allows: GET, POST"):
        check_method(POLICY, method)


def test_empty_method_policy_allows_every_known_method() -> None:
    assert check_method(SERVICE, "delete") == "DELETE"


def test_request_body_over_the_limit_is_refused_with_the_size_and_the_setting() -> None:
    limits = CallLimits(max_request_body=10)
    with pytest.raises(CallRefused, match="11 bytes; the limit is 10 .*CLAVIS_MAX_REQUEST_BYTES"):
        request_body(None, "x" * 11, limits)
    assert request_body(None, "x" * 10, limits)[1] == b"x" * 10


def test_json_and_data_together_are_refused() -> None:
    with pytest.raises(CallRefused, match="either json or data"):
        request_body({"a": 1}, "b", CallLimits())


def test_json_body_is_sent_as_json() -> None:
    keyword, raw = request_body({"a": [1, "é"]}, None, CallLimits())
    assert raw == '{"a":[1,"é"]}'.encode()
    assert keyword["headers"] == {"Content-Type": "application/json"}


ENV_LIMITS = [
    ("defaults", {}, CallLimits()),
    ("response", {"CLAVIS_MAX_RESPONSE_BYTES": "1000"}, CallLimits(max_response_body=1000)),
    ("request-and-timeout", {"CLAVIS_MAX_REQUEST_BYTES": "5", "CLAVIS_CALL_TIMEOUT": "2.5"},
     CallLimits(max_request_body=5, timeout=2.5)),
]  # fmt: skip


@pytest.mark.parametrize(("env", "limits"), [r[1:] for r in ENV_LIMITS], ids=[r[0] for r in ENV_LIMITS])
def test_limits_are_configurable_from_the_environment(env: dict[str, str], limits: CallLimits) -> None:
    assert CallLimits.from_env(env) == limits


@pytest.mark.parametrize("value", ["lots", "0", "-1"])
def test_unusable_limit_setting_is_a_clear_error(value: str) -> None:
    with pytest.raises(LimitsError, match=f"CLAVIS_MAX_RESPONSE_BYTES={value!r}"):
        CallLimits.from_env({"CLAVIS_MAX_RESPONSE_BYTES": value})


HERE = Target("https://api.openai.com/v1/a", "https", "api.openai.com", 443)
REDIRECTS = [
    ("same-origin-relative", 302, "/v1/b", "https://api.openai.com/v1/b"),
    ("same-origin-absolute", 307, "https://api.openai.com/v1/c", "https://api.openai.com/v1/c"),
    ("other-origin", 302, "https://evil.test/steal", None),
    ("other-port", 301, "https://api.openai.com:8443/x", None),
    ("downgrade-to-http", 301, "http://api.openai.com/x", None),
    ("not-a-redirect", 200, "/v1/b", None),
    ("no-location", 302, None, None),
]


@pytest.mark.parametrize(("status", "location", "followed"), [r[1:] for r in REDIRECTS], ids=[r[0] for r in REDIRECTS])
def test_redirects_are_followed_only_on_the_same_origin(
    status: int, location: str | None, followed: str | None
) -> None:
    target = redirect_target(SERVICE, HERE, status, location)
    assert (target.url if target else None) == followed


def test_default_call_timeout_is_below_the_60_s_common_clients_wait() -> None:
    """Otherwise the client gives up first and the model never reads why the call failed."""
    assert CallLimits().timeout == 45.0 and CallLimits.from_env({}).timeout < 60
