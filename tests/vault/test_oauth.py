"""OAuth protocol decisions as pure functions: configuration, token requests and responses, timing."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from clavis_mcp.vault.errors import InvalidOAuthConfig, ReauthRequired, TokenEndpointError
from clavis_mcp.vault.oauth.flow import (
    OAuthConfig,
    Pkce,
    authorization_url,
    backoff_delay,
    needs_refresh,
    parse_token_response,
    token_request,
    validate_config,
)
from clavis_mcp.vault.oauth.state import OAuthRecord, decide
from clavis_mcp.vault.secret import Secret
from tests.conftest import make_service

NOW = 1_700_000_000.0
CONFIG = OAuthConfig(
    token_url="https://github.com/login/oauth/access_token",
    client_id="Iv1.abc",
    grant="refresh_token",
    scopes=("repo", "read:user"),
    authorize_url="https://github.com/login/oauth/authorize",
)
PUBLIC = make_service("gh", "api.github.com")
LOCAL = make_service("local", "127.0.0.1:8443", local=True)


def test_a_public_service_config_is_accepted() -> None:
    assert validate_config(CONFIG, PUBLIC) is CONFIG


@pytest.mark.parametrize(
    ("change", "service", "message"),
    [
        ({"token_url": "http://github.com/token"}, PUBLIC, "https://"),
        ({"token_url": "https://user:pw@github.com/token"}, PUBLIC, "without user info"),
        ({"token_url": "https://127.0.0.1:8443/token"}, PUBLIC, "private or loopback"),
        ({"token_url": "https://localhost/token"}, PUBLIC, "private or loopback"),
        ({"token_url": "https://169.254.169.254/token"}, PUBLIC, "private or loopback"),
        ({"authorize_url": "https://10.0.0.1/authorize"}, PUBLIC, "private or loopback"),
        ({"authorize_url": None}, PUBLIC, "needs an authorization URL"),
        ({"grant": "password"}, PUBLIC, "unknown grant"),
        ({"client_id": "abc\r\nX: y"}, PUBLIC, "line break"),
        ({"authorize_params": (("state", "x"),)}, PUBLIC, "set by clavis-mcp itself"),
    ],
    ids=["plain-http", "userinfo", "loopback", "localhost-name", "metadata-ip", "private-authorize",
         "refresh-without-login", "unknown-grant", "crlf-client-id", "overrides-state"],
)  # fmt: skip
def test_bad_config_is_refused_with_the_reason(change: dict[str, object], service: object, message: str) -> None:
    with pytest.raises(InvalidOAuthConfig, match=message):
        validate_config(replace(CONFIG, **change), service)  # type: ignore[arg-type]


def test_a_local_service_may_use_a_loopback_token_endpoint() -> None:
    config = replace(CONFIG, token_url="https://127.0.0.1:8443/token", authorize_url="https://127.0.0.1:8443/a")
    assert validate_config(config, LOCAL) is config


def test_config_survives_a_json_round_trip() -> None:
    config = replace(CONFIG, authorize_params=(("access_type", "offline"), ("prompt", "consent")))
    assert OAuthConfig.from_json(config.to_json()) == config


def test_authorization_url_carries_pkce_state_and_scopes() -> None:
    pkce = Pkce.new()
    url = authorization_url(CONFIG, "http://127.0.0.1:5000/callback", "st4te", pkce)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "Iv1.abc",
        "redirect_uri": "http://127.0.0.1:5000/callback",
        "state": "st4te",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "scope": "repo read:user",
    }
    digest = hashlib.sha256(pkce.verifier.encode()).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(pkce.verifier) <= 128
    assert pkce.verifier not in url and pkce.verifier not in repr(pkce)


def test_client_secret_goes_in_the_form_or_as_basic_auth_and_never_in_repr() -> None:
    secret = Secret("cs-very-secret:with/odd chars")
    posted = token_request(CONFIG, secret, grant_type="refresh_token", refresh_token="rt-1")
    assert posted.form["client_secret"] == secret.reveal() and "Authorization" not in posted.headers
    basic = token_request(replace(CONFIG, client_auth="basic"), secret, grant_type="refresh_token", refresh_token="x")
    assert "client_secret" not in basic.form
    user, _, password = base64.b64decode(basic.headers["Authorization"][6:]).decode().partition(":")
    assert (user, password) == ("Iv1.abc", "cs-very-secret%3Awith%2Fodd+chars")
    assert basic.headers["Accept"] == "application/json"
    assert secret.reveal() not in repr(posted) + repr(basic) and "rt-1" not in repr(posted)


def test_client_credentials_asks_for_the_configured_scopes() -> None:
    config = replace(CONFIG, grant="client_credentials")
    assert token_request(config, None, grant_type="client_credentials").form == {
        "grant_type": "client_credentials",
        "scope": "repo read:user",
        "client_id": "Iv1.abc",
    }


def test_a_token_response_is_read_into_secrets() -> None:
    body = b'{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-2","scope":"repo"}'
    grant = parse_token_response("gh", 200, body, NOW)
    assert grant.access_token.reveal() == "at-1" and grant.refresh_token == Secret("rt-2")
    assert grant.expires_at == NOW + 3600 and grant.scope == "repo"
    assert "at-1" not in repr(grant) and "rt-2" not in repr(grant)


def test_a_token_without_expiry_or_refresh_token_is_accepted() -> None:
    grant = parse_token_response("gh", 200, b'{"access_token":"gho_x","token_type":"bearer","scope":""}', NOW)
    assert grant.expires_at is None and grant.refresh_token is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b'{"error":"invalid_grant","error_description":"Token has been expired or revoked."}'),
        (200, b'{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect"}'),
        (401, b'{"error":"invalid_client"}'),
    ],
    ids=["google-invalid-grant", "github-bad-refresh-token-with-200", "client-revoked"],
)
def test_a_dead_grant_requires_a_new_login(status: int, body: bytes) -> None:
    with pytest.raises(ReauthRequired, match="clavis-mcp oauth login gh"):
        parse_token_response("gh", status, body, NOW)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (503, b'{"error":"temporarily_unavailable"}', "temporarily_unavailable"),
        (502, b"<html>bad gateway at-leaked</html>", "without a JSON object"),
        (500, b'{"detail":"boom"}', "HTTP 500"),
        (200, b'{"token_type":"bearer"}', "no usable access_token"),
        (200, b'{"access_token":"a\\r\\nb","token_type":"bearer"}', "no usable access_token"),
        (200, b'{"access_token":"at","token_type":"mac"}', "only bearer"),
        (400, b'{"error":"x\\" at-leaked"}', "unreadable error code"),
    ],
    ids=["unavailable", "html", "server-error", "no-token", "crlf-token", "mac-token", "odd-error-code"],
)
def test_other_bad_answers_are_endpoint_errors_that_quote_no_body(status: int, body: bytes, message: str) -> None:
    with pytest.raises(TokenEndpointError, match=message) as caught:
        parse_token_response("gh", status, body, NOW)
    assert "at-leaked" not in str(caught.value)


@pytest.mark.parametrize(
    ("expires_at", "due"),
    [(None, False), (NOW + 3600, False), (NOW + 61, False), (NOW + 60, True), (NOW + 5, True), (NOW - 1, True)],
    ids=["no-expiry", "hour-left", "just-outside-margin", "at-margin", "seconds-left", "expired"],
)
def test_refresh_is_due_sixty_seconds_before_expiry(expires_at: float | None, due: bool) -> None:
    assert needs_refresh(expires_at, NOW) is due


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_delay(n) for n in (1, 2, 3, 8, 9, 50)] == [2.0, 4.0, 8.0, 256.0, 300.0, 300.0]


def _record(**kw: object) -> OAuthRecord:
    base = dict(service="gh", config=CONFIG, has_refresh_token=True, access_fp="fp-1", expires_at=NOW + 3600,
                state="active", reason="", failures=0, retry_at=None, lease_owner=None, lease_until=None,
                refreshed_at=NOW, refreshes=0)  # fmt: skip
    base.update(kw)
    return OAuthRecord(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "rejected", "decision"),
    [
        (_record(), None, "fresh"),
        (_record(expires_at=NOW + 30), None, "claimed"),
        (_record(expires_at=NOW + 30, lease_owner="x", lease_until=NOW + 5), None, "wait"),
        (_record(expires_at=NOW + 30, lease_owner="x", lease_until=NOW - 1), None, "claimed"),
        (_record(expires_at=NOW + 30, retry_at=NOW + 10), None, "backoff"),
        (_record(expires_at=NOW + 30, retry_at=NOW - 1), None, "claimed"),
        (_record(state="reauth_required"), None, "reauth"),
        (_record(expires_at=NOW - 1, has_refresh_token=False), None, "reauth"),
        (_record(), "fp-1", "claimed"),
        (_record(), "fp-0", "fresh"),
        (_record(expires_at=None), "fp-1", "claimed"),
        (_record(expires_at=None, has_refresh_token=False), "fp-1", "reauth"),
        (_record(config=replace(CONFIG, grant="client_credentials"), has_refresh_token=False, expires_at=NOW), None,
         "claimed"),
    ],
    ids=["valid", "due", "due-lease-held", "due-lease-expired", "due-backing-off", "due-backoff-over",
         "dead-grant", "expired-no-refresh-token", "rejected-current", "rejected-already-replaced",
         "rejected-no-expiry", "rejected-cannot-refresh", "client-credentials-due"],
)  # fmt: skip
def test_refresh_decision(record: OAuthRecord, rejected: str | None, decision: str) -> None:
    assert decide(record, NOW, rejected) == decision
