"""The GitHub App method's pure parts: the JWT it signs, the token answer it reads, its options."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from clavis_mcp.vault import Secret
from clavis_mcp.vault.auth import CREDENTIAL
from clavis_mcp.vault.auth.github_app import TOKEN, GitHubAppAuth, app_jwt, parse_token
from clavis_mcp.vault.auth.registry import build, from_json
from clavis_mcp.vault.errors import InvalidService, TokenEndpointError
from tests.vault.test_auth_shapes import request

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                        serialization.NoEncryption())  # fmt: skip


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    "stored", [base64.b64encode(PEM).decode(), PEM.decode().replace("\n", "\\n")], ids=["base64", "escaped-pem"]
)
def test_the_jwt_is_rs256_over_the_app_id_and_a_ten_minute_window(stored: str) -> None:
    token = app_jwt("123", Secret(stored), 1_700_000_000.0)
    head, body, signature = token.split(".")
    KEY.public_key().verify(unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    assert json.loads(unb64(head)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(unb64(body)) == {"iat": 1_699_999_940, "exp": 1_700_000_540, "iss": "123"}


def test_a_key_that_is_not_an_rsa_pem_is_refused_without_showing_it() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidService, match="RSA"):
        app_jwt("1", Secret(base64.b64encode(ec_pem).decode()), 0)
    with pytest.raises(InvalidService, match="not base64") as info:
        app_jwt("1", Secret("not a key at all!"), 0)
    assert "not a key" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [(401, b'{"message": "bad"}', "HTTP 401 \\(check"), (201, b"{}", "HTTP 201"),
     (201, b'{"token": "a\\r\\nb", "expires_at": "2030-01-01T00:00:00Z"}', "HTTP 201"), (500, b"<html>", "HTTP 500")],
    ids=["refused", "no-token", "token-with-crlf", "server-error"],
)  # fmt: skip
def test_an_answer_without_a_usable_token_is_an_error(status: int, body: bytes, match: str) -> None:
    with pytest.raises(TokenEndpointError, match=match):
        parse_token("gh", status, body)


def test_a_token_answer_gives_the_token_and_its_expiry() -> None:
    token, expires = parse_token("gh", 201, b'{"token": "ghs_abc", "expires_at": "2030-01-01T00:00:00Z"}')
    assert token.reveal() == "ghs_abc" and expires == 1_893_456_000.0


def test_the_method_is_stored_built_and_puts_the_token_as_a_bearer() -> None:
    method = build("github-app", app_id="123", installation_id="42")
    assert from_json(method.to_json()) == method and method.token_url.endswith("/app/installations/42/access_tokens")
    options: dict[str, str] = dict(method.options())
    assert build(options.pop("auth"), **options) == method
    r = request(headers=[("Authorization", "Bearer agent")])
    method.apply(r, {CREDENTIAL: Secret("key"), TOKEN: Secret("ghs_tok")})
    assert [v for k, v in r.headers if k.lower() == "authorization"] == ["Bearer ghs_tok"]
    assert method.secret_fields() == (CREDENTIAL, TOKEN) and method.optional_fields() == (TOKEN,)
    with pytest.raises(InvalidService, match="installation token"):
        method.apply(request(), {CREDENTIAL: Secret("key")})


@pytest.mark.parametrize(
    "options",
    [{"app_id": "123"}, {"app_id": "x y", "installation_id": "1"}, {"app_id": "1", "installation_id": "1",
     "api_url": "http://api.github.com"}],
    ids=["no-installation", "bad-app-id", "plain-http"],
)  # fmt: skip
def test_options_that_cannot_reach_github_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(InvalidService):
        build("github-app", **options)


def test_the_client_id_form_of_the_app_id_is_accepted() -> None:
    assert GitHubAppAuth("Iv23liAbCdEf", "42").validate().app_id == "Iv23liAbCdEf"
