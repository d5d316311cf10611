"""OAuth is the service's auth method, not a table the proxy asks: a service registered with a
grant carries ``oauth2``; one stored by an older version (a bearer header next to a row in
``oauth_clients``) reads as ``oauth2`` once any of its readers is built, with the same header on
the wire, and its refresh token and client secret stay redacted."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from clavis_mcp.vault import Secret, Vault, VaultCorrupted, validate_secret
from clavis_mcp.vault.auth import CREDENTIAL, HeaderAuth, OAuth2Auth, OutgoingRequest
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.redaction.service import ServiceRedactors, in_play
from tests.conftest import SECRET, make_service
from tests.vault.rawdb import query

ACCESS, REFRESH, CLIENT = "at-method-0123456789abcdef", "rt-method-0123456789abcdef", "cs-method-0123456789abcdef"
CONFIG = OAuthConfig("https://auth.acme.example/token", "client-id", "client_credentials")


def register(vault: Vault, name: str = "acme") -> None:
    service = make_service(name, "api.acme.example")
    grant = TokenGrant(Secret(ACCESS), None, Secret(REFRESH), None)
    oauth_store.register(vault, service, CONFIG, Secret(CLIENT), grant)


def stored_auth(vault: Vault, name: str) -> dict[str, object]:
    [(definition,)] = query(vault.home, "SELECT definition FROM services WHERE name = ?", (name,))
    return dict(json.loads(definition)["auth"])


def test_a_registered_oauth_service_carries_the_oauth2_method(vault: Vault) -> None:
    register(vault)
    vault.add_service(make_service("plain", "api.plain.example"), validate_secret(SECRET))
    assert vault.get_service("acme").auth == OAuth2Auth(grant="client_credentials")
    assert stored_auth(vault, "acme")["kind"] == "oauth2"
    assert oauth_store.oauth_services_as_of(vault.snapshot()) == {"acme"}
    assert oauth_store.describe_auth(vault, vault.get_service("acme")).startswith("oauth2 (client_credentials)")


def test_the_oauth2_method_sends_the_bytes_the_bearer_header_did(vault: Vault) -> None:
    register(vault)
    requests = [OutgoingRequest("GET", "https", "api.acme.example", 443, "/", list, [], lambda: None) for _ in "ab"]
    vault.get_service("acme").auth.apply(requests[0], {CREDENTIAL: Secret(ACCESS)})
    HeaderAuth("Authorization", "Bearer {secret}").apply(requests[1], {CREDENTIAL: Secret(ACCESS)})
    assert requests[0].headers == requests[1].headers == [("Authorization", f"Bearer {ACCESS}")]


def test_an_oauth_service_stored_by_an_older_version_reads_as_oauth2(vault: Vault, home: Path) -> None:
    register(vault)
    legacy = replace(vault.get_service("acme"), auth=HeaderAuth("Authorization", "Bearer {secret}"))
    vault.update_service(legacy)  # what older versions stored: a bearer header and a row in oauth_clients
    assert stored_auth(vault, "acme")["kind"] == "header"
    reopened = Vault.open(home)  # another process: its readers upgrade the service before any request
    try:
        ServiceRedactors(reopened)
        assert {s.reveal() for s in in_play(reopened, reopened.snapshot(), "acme").secrets} == {ACCESS, REFRESH, CLIENT}
        assert reopened.get_service("acme").auth == OAuth2Auth(grant="client_credentials")
        assert stored_auth(reopened, "acme") == {
            **legacy.auth.to_json(),
            "kind": "oauth2",
            "grant": "client_credentials",
        }
    finally:
        reopened.close()


def test_an_oauth_services_refresh_token_and_client_secret_are_redacted(vault: Vault) -> None:
    register(vault)
    secrets = {s.reveal() for s in in_play(vault, vault.snapshot(), "acme").secrets}
    assert secrets == {ACCESS, REFRESH, CLIENT}


def test_a_plain_service_has_only_its_credential_in_play(vault: Vault) -> None:
    register(vault)
    vault.add_service(make_service("plain", "api.plain.example"), validate_secret(SECRET))
    assert [s.reveal() for s in in_play(vault, vault.snapshot(), "plain").secrets] == [SECRET]


def test_a_service_stored_with_an_unknown_auth_kind_is_refused_by_name(vault: Vault, home: Path) -> None:
    """A vault written by a newer version with a method this one lacks: never a service without its auth."""
    vault.add_service(make_service("plain", "api.plain.example"), validate_secret(SECRET))
    [(definition,)] = query(home, "SELECT definition FROM services WHERE name = 'plain'")
    data = json.loads(definition)
    data["auth"]["kind"] = "sigv9"
    query(home, "UPDATE services SET definition = ? WHERE name = 'plain'", (json.dumps(data, sort_keys=True),))
    with (
        closing(Vault.open(home)) as reopened,
        pytest.raises(VaultCorrupted, match="'plain'.*unknown auth method 'sigv9'"),
    ):
        reopened.get_service("plain")
