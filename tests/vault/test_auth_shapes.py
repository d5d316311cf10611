"""The other ways to put a key on a request: HMAC signing, basic from two fields, several headers,
a key in the body, a key in the path. Each as a table of what the finished request becomes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.auth import CREDENTIAL, AuthMethod, OutgoingRequest, hmac_sign
from clavis_mcp.vault.auth.basic import BasicAuth, build_basic
from clavis_mcp.vault.auth.body import BodyAuth
from clavis_mcp.vault.auth.fields import fill, template_fields
from clavis_mcp.vault.auth.headers import HeadersAuth
from clavis_mcp.vault.auth.hmac_sign import HmacAuth
from clavis_mcp.vault.auth.path import PathAuth
from clavis_mcp.vault.auth.registry import build, from_json
from clavis_mcp.vault.errors import CannotInject, InvalidService

KEY = "hmac-key-0123456789abcdef"
PASSWORD, USER = "pa55-w0rd-XYZ", "svc-user-42"
APP_ID = "app-7f3e9a"
BOT = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"


def request(
    path: str = "/v1/items",
    query: str = "",
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    streamed: bool = False,
) -> OutgoingRequest:
    return OutgoingRequest("POST", "https", "api.example.com", 443, path, list, list(headers or []),
                           lambda: None if streamed else hashlib.sha256(body).hexdigest(), raw_query=query,
                           body=lambda: None if streamed else body)  # fmt: skip


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hmac_sign, "now", lambda: 1_700_000_000.25)


# -- templates that name secret fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "fields"),
    [("{secret}", ("credential",)), ("{username}:{secret}", ("username", "credential")),
     ("Token {app_id}/{secret}/{app_id}", ("app_id", "credential"))],
    ids=["credential", "two-fields", "repeated"],
)  # fmt: skip
def test_a_template_names_its_fields(template: str, fields: tuple[str, ...]) -> None:
    assert template_fields(template) == fields


@pytest.mark.parametrize("template", ["{Secret}", "no field", "{a b}", "x{", "{secret}\r\nX: 1", "}{secret}"])
def test_a_template_with_a_bad_field_is_refused(template: str) -> None:
    with pytest.raises(InvalidService):
        template_fields(template)


def test_a_value_that_looks_like_a_placeholder_is_not_expanded_again() -> None:
    assert fill("{a}-{secret}", {"a": Secret("{secret}"), CREDENTIAL: Secret("k")}) == "{secret}-k"


# -- HMAC --------------------------------------------------------------------------------------


def test_hmac_signs_the_default_canonical_string(fixed_time: None) -> None:
    r = request(query="b=2&a=1", body=b'{"n":1}', headers=[("X-Signature", "forged")])
    HmacAuth().apply(r, {CREDENTIAL: Secret(KEY)})
    text = "\n".join(["1700000000", "POST", "/v1/items", "b=2&a=1", hashlib.sha256(b'{"n":1}').hexdigest()])
    assert r.header("X-Timestamp") == "1700000000"
    assert r.header("X-Signature") == hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert [k for k, _ in r.headers].count("X-Signature") == 1


def test_hmac_in_a_stripe_like_shape(fixed_time: None) -> None:
    """``t=...,v1=...`` over ``timestamp.body``, no timestamp header, base64-decoded key, key id header."""
    method = build("hmac", hmac_header="X-Sig", hmac_template="t={timestamp},v1={signature}",
                   hmac_parts="timestamp,body", hmac_separator=".", hmac_timestamp_header="",
                   hmac_key_format="base64", hmac_key_id="k1", hmac_key_id_header="X-Key-Id")  # fmt: skip
    raw_key = b"\x00\x01binary-key"
    r = request(body=b"payload")
    method.apply(r, {CREDENTIAL: Secret(base64.b64encode(raw_key).decode())})
    digest = hmac.new(raw_key, b"1700000000.payload", hashlib.sha256).hexdigest()
    assert r.header("X-Sig") == f"t=1700000000,v1={digest}"
    assert r.header("X-Key-Id") == "k1" and r.header("X-Timestamp") is None


@pytest.mark.parametrize(
    ("form", "expected"),
    [("unix", "1700000000"), ("unix_ms", "1700000000250"), ("iso8601", "2023-11-14T22:13:20Z"),
     ("http", "Tue, 14 Nov 2023 22:13:20 GMT")],
    ids=["unix", "unix_ms", "iso8601", "http"],
)  # fmt: skip
def test_hmac_timestamp_formats(form: str, expected: str) -> None:
    assert hmac_sign.format_timestamp(1_700_000_000.25, form) == expected


def test_hmac_signs_a_header_part_and_base64(fixed_time: None) -> None:
    method = HmacAuth(parts=("method", "header:Content-Type", "target"), encoding="base64", separator="|")
    r = request(query="x=1", headers=[("Content-Type", "application/json")])
    method.apply(r, {CREDENTIAL: Secret(KEY)})
    digest = hmac.new(KEY.encode(), b"POST|application/json|/v1/items?x=1", hashlib.sha256).digest()
    assert r.header("X-Signature") == base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    "options",
    [{"hmac_template": "{sig}"}, {"hmac_parts": "method,secret"}, {"hmac_encoding": "base32"},
     {"hmac_timestamp_format": "rfc"}, {"hmac_key_id_header": "X-Key-Id"}, {"hmac_header": "Bad Header"}],
    ids=["template-without-signature", "unknown-part", "encoding", "timestamp-format", "key-id-header-without-id",
         "header-name"],
)  # fmt: skip
def test_hmac_options_that_cannot_sign_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(InvalidService):
        build("hmac", **options)


def test_a_stored_key_that_is_not_the_declared_encoding_is_refused() -> None:
    with pytest.raises(InvalidService, match="not valid base64"):
        HmacAuth(key_format="base64").apply(request(), {CREDENTIAL: Secret("not base64!")})


# -- basic from two fields, several headers ------------------------------------------------------


def test_basic_auth_from_a_user_and_a_password_stored_apart() -> None:
    method = build_basic(template="{username}:{secret}")
    assert method.secret_fields() == ("username", "credential")
    r = request(headers=[("authorization", "Basic Zm9yZ2Vk")])
    secrets = {CREDENTIAL: Secret(PASSWORD), "username": Secret(USER)}
    method.apply(r, secrets)
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert [v for k, v in r.headers if k.lower() == "authorization"] == [f"Basic {pair}"]
    assert method.redaction_values(secrets) == [f"Basic {pair}"]
    with pytest.raises(InvalidService, match="username"):
        method.apply(request(), {CREDENTIAL: Secret(PASSWORD)})  # a half-stored service is not injected
    assert USER not in method.describe() and from_json(method.to_json()) == method


def test_two_headers_from_two_fields() -> None:
    method = build("headers", headers=["X-Api-Key: {secret}", "X-App-Id: {app_id}"])
    r = request(headers=[("x-app-id", "the-agent's")])
    method.apply(r, {CREDENTIAL: Secret(KEY), "app_id": Secret(APP_ID)})
    assert [(k, v) for k, v in r.headers] == [("X-Api-Key", KEY), ("X-App-Id", APP_ID)]
    assert method.credential_headers() == ("X-Api-Key", "X-App-Id")
    assert method.secret_fields() == ("credential", "app_id")
    assert from_json(method.to_json()) == method
    options = method.options()
    assert build(options.pop("auth"), **options) == method


@pytest.mark.parametrize(
    "headers", [[], ["X-Api-Key: plain"], ["X-A: {secret}", "x-a: {other}"], ["Bad Name: {secret}"]],
    ids=["none", "no-field", "twice", "bad-name"],
)  # fmt: skip
def test_headers_that_cannot_carry_fields_are_refused(headers: list[str]) -> None:
    with pytest.raises(InvalidService):
        build("headers", headers=headers)


# -- a key in the body ----------------------------------------------------------------------------


JSON = [("Content-Type", "application/json"), ("Content-Length", "20")]
FORM = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]


@pytest.mark.parametrize(
    ("method", "body", "headers", "expected"),
    [
        (BodyAuth("api_key"), b'{"q": "x", "api_key": "agent"}', JSON, {"q": "x", "api_key": KEY}),
        (BodyAuth("api_key"), b"", [], {"api_key": KEY}),
        (BodyAuth("token", "form"), b"a=1&token=agent&token=2&b=%C3%BC", FORM, "a=1&b=%C3%BC&token=" + KEY),
    ],
    ids=["json-replaces-the-agent-field", "json-empty-body", "form-replaces-every-copy"],
)
def test_the_key_is_set_in_the_body_and_content_length_follows(
    method: BodyAuth, body: bytes, headers: list[tuple[str, str]], expected: object
) -> None:
    r = request(body=body, headers=headers)
    method.apply(r, {CREDENTIAL: Secret(KEY)})
    sent = r.body() or b""
    assert (json.loads(sent) if isinstance(expected, dict) else sent.decode()) == expected
    assert r.header("Content-Length") == str(len(sent))
    assert r.body_sha256() == hashlib.sha256(sent).hexdigest()


@pytest.mark.parametrize(
    ("method", "r", "reason"),
    [
        (BodyAuth("k"), request(body=b"[1, 2]", headers=JSON), "JSON object"),
        (BodyAuth("k"), request(body=b"{not json", headers=JSON), "not valid JSON"),
        (BodyAuth("k"), request(body=b'{"a":1}', headers=[("Content-Type", "text/plain")]), "Content-Type"),
        (BodyAuth("k"), request(body=b"x", headers=[*JSON, ("Content-Encoding", "gzip")]), "gzip"),
        (BodyAuth("k"), request(streamed=True), "streamed"),
        (BodyAuth("k", "form"), request(body=b"\xff\xfe", headers=FORM), "URL-encoded form"),
    ],
    ids=["json-array", "bad-json", "other-content-type", "compressed", "streamed", "bad-form"],
)
def test_a_body_that_cannot_carry_the_key_is_refused(method: BodyAuth, r: OutgoingRequest, reason: str) -> None:
    with pytest.raises(CannotInject, match=reason):
        method.apply(r, {CREDENTIAL: Secret(KEY)})


# -- a key in the path ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "sent", "shown"),
    [
        ("/bot{secret}/", "/botDUMMY/getMe", f"/bot{BOT}/getMe", "/bot{secret}/getMe"),
        ("/bot{secret}/", "/bot/getMe", f"/bot{BOT}/getMe", "/bot{secret}/getMe"),
        ("/v1/{secret}", "/v1/placeholder", f"/v1/{BOT}", "/v1/{secret}"),
        ("/v1/{secret}", "/v1/x/y", f"/v1/{BOT}/y", "/v1/{secret}/y"),
    ],
    ids=["bot-dummy", "bot-empty", "last-segment", "inner-segment"],
)
def test_the_key_replaces_what_the_agent_put_in_the_path(template: str, path: str, sent: str, shown: str) -> None:
    r = request(path=path)
    PathAuth(template).validate().apply(r, {CREDENTIAL: Secret(BOT)})
    assert (r.path, r.shown_path) == (sent, shown)


def test_a_key_with_reserved_characters_is_percent_encoded_in_the_path() -> None:
    r = request(path="/bot0/x")
    PathAuth("/bot{secret}/").apply(r, {CREDENTIAL: Secret("a/b?c#d e")})
    assert r.path == "/bota%2Fb%3Fc%23d%20e/x"


@pytest.mark.parametrize("path", ["/v2/botX/getMe", "/bo", "/botX"], ids=["elsewhere", "short", "no-slash"])
def test_a_path_off_the_template_is_refused_not_keyed_elsewhere(path: str) -> None:
    with pytest.raises(CannotInject, match="path"):
        PathAuth("/bot{secret}/").apply(request(path=path), {CREDENTIAL: Secret(BOT)})


@pytest.mark.parametrize(
    "template", ["/bot", "bot{secret}/", "/a{secret}{secret}/", "/a//{secret}", "/x{secret}y/", "/a?{secret}"],
    ids=["no-secret", "relative", "twice", "double-slash", "mid-segment", "query"],
)  # fmt: skip
def test_path_templates_that_are_not_plain_are_refused(template: str) -> None:
    with pytest.raises(InvalidService):
        PathAuth(template).validate()


# -- every new method: stored, rebuilt, described without a secret ---------------------------------


METHODS: list[Callable[[], AuthMethod]] = [
    lambda: build("hmac", hmac_key_id="kid"),
    lambda: build("headers", headers=["X-Api-Key: {secret}", "X-App-Id: {app_id}"]),
    lambda: build("body", body_field="api_key", body_format="form"),
    lambda: build("path", path_template="/bot{secret}/"),
    lambda: build("basic", template="{username}:{secret}"),
]


@pytest.mark.parametrize("make", METHODS, ids=["hmac", "headers", "body", "path", "basic-fields"])
def test_each_method_is_stored_and_rebuilt_from_its_options(make: Callable[[], AuthMethod]) -> None:
    method = make()
    assert from_json(method.to_json()) == method
    options: dict[str, object] = dict(method.options())
    assert build(str(options.pop("auth")), **options) == method  # type: ignore[arg-type]
    assert isinstance(method.describe(), str) and "{" not in method.describe().replace("{secret}", "").replace(
        "{app_id}", ""
    ).replace("{username}", "")


def test_basic_auth_built_with_one_field_stays_as_it_was() -> None:
    assert BasicAuth().secret_fields() == ("credential",)
    assert HeadersAuth((("X-A", "{secret}"),)).secret_fields() == ("credential",)


@pytest.mark.parametrize("part", ["body", "body_sha256"])
def test_hmac_over_a_streamed_body_is_refused_not_signed_over_nothing(part: str, fixed_time: None) -> None:
    with pytest.raises(CannotInject, match="streamed"):
        HmacAuth(parts=("method", part)).apply(request(streamed=True), {CREDENTIAL: Secret(KEY)})
