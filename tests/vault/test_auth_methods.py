"""Each auth method alone: what it puts on the finished request, what it asks to redact, how it is
described and stored. The proxy-level behaviour is in tests/addons/test_inject.py."""

from __future__ import annotations

import base64
import json

import pytest

from clavis_mcp.vault.auth import (
    CREDENTIAL,
    AuthMethod,
    BasicAuth,
    HeaderAuth,
    OAuth2Auth,
    OutgoingRequest,
    QueryAuth,
)
from clavis_mcp.vault.auth.oauth2 import GRANTS
from clavis_mcp.vault.auth.registry import METHODS, build, from_json
from clavis_mcp.vault.errors import InvalidService
from clavis_mcp.vault.oauth import flow as oauth
from clavis_mcp.vault.secret import Secret

SECRET = "sk-auth-method-0123456789abcdef"
SECRETS = {CREDENTIAL: Secret(SECRET)}
FIXED = (("anthropic-version", "2023-06-01"),)
BASIC_PAIR = base64.b64encode(f"api:{SECRET}".encode()).decode()


def outgoing() -> OutgoingRequest:
    return OutgoingRequest(
        method="GET",
        scheme="https",
        host="api.example.com",
        port=443,
        path="/v1/items",
        query=lambda: [("a", "1"), ("api_key", "the-client's")],
        headers=[("Accept", "*/*"), ("X-Api-Key", "the-client's")],
        body_sha256=lambda: None,
    )


CASES = [
    (HeaderAuth("x-api-key", extra_headers=FIXED),
     [("Accept", "*/*"), ("x-api-key", SECRET), FIXED[0]], [("a", "1"), ("api_key", "the-client's")], [SECRET]),
    (HeaderAuth("Authorization", "Bearer {secret}"),
     [("Accept", "*/*"), ("X-Api-Key", "the-client's"), ("Authorization", f"Bearer {SECRET}")],
     [("a", "1"), ("api_key", "the-client's")], [f"Bearer {SECRET}"]),
    (BasicAuth(template="api:{secret}"),
     [("Accept", "*/*"), ("X-Api-Key", "the-client's"), ("Authorization", f"Basic {BASIC_PAIR}")],
     [("a", "1"), ("api_key", "the-client's")], [f"Basic {BASIC_PAIR}"]),
    (QueryAuth("api_key", extra_headers=FIXED),
     [("Accept", "*/*"), ("X-Api-Key", "the-client's"), FIXED[0]], [("a", "1"), ("api_key", SECRET)], []),
    (OAuth2Auth(grant="client_credentials"),
     [("Accept", "*/*"), ("X-Api-Key", "the-client's"), ("Authorization", f"Bearer {SECRET}")],
     [("a", "1"), ("api_key", "the-client's")], [f"Bearer {SECRET}"]),
]  # fmt: skip
IDS = ["header-with-fixed", "bearer", "basic", "query-replaces-client-param", "oauth2-bearer"]


@pytest.mark.parametrize(("method", "headers", "query", "derived"), CASES, ids=IDS)
def test_apply_puts_the_credential_on_the_finished_request(
    method: AuthMethod, headers: list[tuple[str, str]], query: list[tuple[str, str]], derived: list[str]
) -> None:
    request = outgoing()
    method.apply(request, SECRETS)
    assert request.headers == headers
    assert request.query == query
    assert request.query_changed == isinstance(method, QueryAuth)


@pytest.mark.parametrize(("method", "headers", "query", "derived"), CASES, ids=IDS)
def test_redaction_values_are_the_derived_forms(
    method: AuthMethod, headers: list[tuple[str, str]], query: list[tuple[str, str]], derived: list[str]
) -> None:
    assert method.redaction_values(SECRETS) == derived


@pytest.mark.parametrize("method", [case[0] for case in CASES], ids=IDS)
def test_describe_and_stored_form_never_hold_the_secret(method: AuthMethod) -> None:
    request = outgoing()
    method.apply(request, SECRETS)
    for text in (method.describe(), repr(method), json.dumps(method.to_json())):
        assert SECRET not in text and BASIC_PAIR not in text


@pytest.mark.parametrize("method", [case[0] for case in CASES], ids=IDS)
def test_round_trip_through_the_stored_form(method: AuthMethod) -> None:
    stored = json.loads(json.dumps(method.to_json()))
    assert stored["kind"] == method.kind and METHODS[method.kind] is type(method)
    assert from_json(stored) == method


@pytest.mark.parametrize(
    ("stored", "method"),
    [
        ({"kind": "header", "name": "x-api-key", "template": "{secret}", "extra_headers": [list(FIXED[0])]},
         HeaderAuth("x-api-key", "{secret}", FIXED)),
        ({"kind": "basic", "name": "Authorization", "template": "{secret}:"}, BasicAuth()),
        ({"kind": "query", "name": "key", "template": "{secret}", "extra_headers": []}, QueryAuth("key")),
    ],
    ids=["header-with-fixed", "basic-without-extra-headers", "query"],
)  # fmt: skip
def test_the_format_older_vaults_wrote_still_loads(stored: dict[str, object], method: AuthMethod) -> None:
    assert from_json(stored) == method
    assert method.to_json() == {"extra_headers": [], **stored}


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(InvalidService, match="unknown auth method 'sigv9'"):
        from_json({"kind": "sigv9", "name": "x", "template": "{secret}"})


@pytest.mark.parametrize(
    ("method", "fields"),
    [(HeaderAuth("x-api-key"), (CREDENTIAL,)), (QueryAuth("key"), (CREDENTIAL,)),
     (OAuth2Auth(), (CREDENTIAL, "refresh_token", "client_secret"))],
    ids=["header", "query", "oauth2-redacts-refresh-token-and-client-secret"],
)  # fmt: skip
def test_secret_fields(method: AuthMethod, fields: tuple[str, ...]) -> None:
    assert method.secret_fields() == fields


@pytest.mark.parametrize(
    ("method", "headers"),
    [(HeaderAuth("X-Key"), ("X-Key",)), (BasicAuth(), ("Authorization",)), (OAuth2Auth(), ("Authorization",)),
     (QueryAuth("key"), ())],
    ids=["header", "basic", "oauth2", "query-sets-no-header"],
)  # fmt: skip
def test_credential_headers(method: AuthMethod, headers: tuple[str, ...]) -> None:
    assert method.credential_headers() == headers


@pytest.mark.parametrize(
    "method",
    [HeaderAuth("X Key"), HeaderAuth("X-Key", "no placeholder"), QueryAuth("a&b"), OAuth2Auth(grant="password"),
     BasicAuth(template="{secret}\r\nX-Evil: 1")],
    ids=["header-name-with-space", "template-without-secret", "query-param", "oauth2-unknown-grant", "basic-crlf"],
)  # fmt: skip
def test_validate_refuses_what_could_not_be_injected_safely(method: AuthMethod) -> None:
    with pytest.raises(InvalidService):
        method.validate()


def test_a_credential_that_would_split_a_header_is_refused_not_sent() -> None:
    request = outgoing()
    with pytest.raises(InvalidService, match="control characters"):
        HeaderAuth("X-Key").apply(request, {CREDENTIAL: Secret("bad\r\nX-Evil: 1")})
    assert request.headers == outgoing().headers


def test_build_adds_validated_fixed_headers() -> None:
    assert build("bearer", extra_headers=dict(FIXED)) == HeaderAuth("Authorization", "Bearer {secret}", FIXED)
    with pytest.raises(InvalidService, match="fixed header"):
        build("query", param="key", extra_headers={"X-V": "1\nX-Evil: 1"})


@pytest.mark.parametrize(
    "method",
    [HeaderAuth("x-api-key"), HeaderAuth("Authorization", "Bearer {secret}"), BasicAuth(template="api:{secret}"),
     QueryAuth("api_key")],
    ids=["header", "bearer", "basic", "query"],
)  # fmt: skip
def test_options_build_the_method_again(method: AuthMethod) -> None:
    """What an export table holds is what ``--auth`` and an import turn back into the same method."""
    options = method.options()
    assert build(options.pop("auth"), **options) == method


def test_the_oauth2_method_knows_the_grants_the_oauth_module_does() -> None:
    assert GRANTS == oauth.GRANTS
