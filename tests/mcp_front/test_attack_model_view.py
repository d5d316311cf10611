"""Attacks on what the model sees through call_service, found after SECURITY-CASES F.

A hostile upstream reflects the credential in spellings the proxy's byte scan cannot see (in the
body, across the cut of the body the model is shown, in headers and redirects), sets cookies, or
forges the proxy's own headers. The model must see none of it, however it decodes what it reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import trustme
from mcp import Client

from clavis_mcp.vault import Secret, Vault, validate_secret
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.views import redact_decoded
from tests.conftest import OTHER_SECRET, SECRET, make_service
from tests.hostile_upstream import (
    BODY_LIMIT,
    CUT_REFLECTIONS,
    HEADER_REFLECTIONS,
    REFLECTIONS,
    Hostile,
    start_hostile,
)
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, OAuthServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def upstreams(vault: Vault, upstream_ca: trustme.CA) -> Iterator[tuple[Hostile, Hostile]]:
    """Two services on two loopback ports of one host name (cookies ignore ports)."""
    a, b = start_hostile(upstream_ca), start_hostile(upstream_ca)
    vault.add_service(make_service("api", f"127.0.0.1:{a.port}", local=True), validate_secret(SECRET))
    vault.add_service(make_service("other", f"127.0.0.1:{b.port}", local=True), validate_secret(OTHER_SECRET))
    yield a, b
    for server in (a, b):
        server.server.shutdown()
        server.server.server_close()


async def call(client: Client, service: str, url: str) -> Any:
    return await client.call_tool("call_service", {"service_name": service, "method": "GET", "url": url})


def everything_the_model_sees(result: Any) -> str:
    parts = [json.dumps(result.structured_content, ensure_ascii=False)]
    parts += [getattr(block, "text", "") for block in result.content]
    return "\n".join(parts)


def strings_the_model_sees(result: Any) -> list[str]:
    """Every string of a tool result, keys too, as the model reads it (not as JSON text, where
    ``json.dumps`` would double the backslash of a ``\\u002d`` left in it)."""
    found: list[str] = [getattr(block, "text", "") for block in result.content]

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)

    walk(result.structured_content)
    return found


def spellings_seen(result: Any, values: Iterable[str]) -> int:
    """How many spellings of ``values`` the model can read in ``result``, also as it would decode
    them: every listed spelling, escapes mixed per character and nested, UTF-16 (``redact_decoded``)."""
    redactor = Redactor("seen", [], derived=list(values))
    return sum(
        redact_decoded(redactor, text.encode("utf-8", "surrogateescape"))[1] for text in strings_the_model_sees(result)
    )


def most_of(secret: str) -> list[str]:
    """Every start of ``secret`` half its length or longer: a secret shown but for its end is leaked."""
    return [secret[:length] for length in range(len(secret) // 2, len(secret) + 1)]


@pytest.mark.parametrize("path", list(REFLECTIONS), ids=[p.strip("/") for p in REFLECTIONS])
async def test_call_service_never_rebuilds_a_reflected_secret_while_decoding_the_body(
    client: Client, upstreams: tuple[Hostile, Hostile], path: str
) -> None:
    """JSON escapes and UTF-16/32 slip past a byte scan; the model must not see them decoded."""
    a, _ = upstreams
    result = await call(client, "api", a.url(path))
    assert not spellings_seen(result, [SECRET]), "the model saw the secret"
    seen = everything_the_model_sees(result)
    assert "\x00" not in seen and "\\u0000" not in seen  # no UTF-16 rendered as NUL-laced text
    assert not result.is_error


async def test_call_service_reports_the_redactions_it_made_on_the_decoded_body(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, _ = upstreams
    result = await call(client, "api", a.url("/json-one-escaped"))
    assert result.structured_content["body"] == {"echo": "[REDACTED:api]"}
    assert result.structured_content["redactions"] >= 1


async def test_cookies_set_by_one_service_never_reach_another_or_come_back(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, b = upstreams
    await call(client, "api", a.url("/set-cookie"))
    await call(client, "other", b.url("/plain"))
    await call(client, "api", a.url("/plain"))
    assert [s.get("cookie") for s in a.seen + b.seen] == [None, None, None]


async def test_an_upstream_cannot_forge_a_proxy_refusal_or_the_proxys_headers(
    client: Client, upstreams: tuple[Hostile, Hostile]
) -> None:
    a, _ = upstreams
    result = await call(client, "api", a.url("/forge-refusal"))
    assert not result.is_error
    structured = result.structured_content
    assert structured["status"] == 200 and structured["body"] == {"done": True}
    assert structured["audit_id"] != "forged"
    assert "policy says" not in everything_the_model_sees(result)


@pytest.mark.parametrize("path", list(CUT_REFLECTIONS), ids=[p.removeprefix("/cut/") for p in CUT_REFLECTIONS])
async def test_call_service_never_shows_most_of_a_secret_cut_at_the_body_limit(
    client: Client, upstreams: tuple[Hostile, Hostile], path: str
) -> None:
    """A long body is streamed by the proxy, which scans it for whole listed spellings only; the
    model is shown its first bytes. A spelling across that cut (one character escaped; the last
    character pushed away by NUL bytes its readers skip, or spelled in three nested escapes) was
    whole in neither scan, and the model read all of the secret but its end."""
    a, _ = upstreams
    result = await call(client, "api", a.url(path))
    structured = result.structured_content
    assert structured["body_truncated"] and isinstance(structured["body"], str)
    assert len(structured["body"]) > BODY_LIMIT - 1024  # the body is still shown, up to the limit
    assert not spellings_seen(result, most_of(SECRET)), "the model saw most of the secret"


@pytest.mark.parametrize("path", list(HEADER_REFLECTIONS), ids=[p.removeprefix("/header/") for p in HEADER_REFLECTIONS])
async def test_call_service_never_shows_a_secret_spelled_in_a_returned_header_or_redirect(
    client: Client, upstreams: tuple[Hostile, Hostile], path: str
) -> None:
    """The proxy scrubs headers for listed spellings; ``sk%2Dtest-…`` in a Location (shown as the
    header, as the redirect not followed, or as the URL of the redirect followed), ``sk&#45;test-…``
    in a Link, or a spelling in an allowlisted header's name reached the model."""
    a, _ = upstreams
    result = await call(client, "api", a.url(path))
    assert not result.is_error
    assert not spellings_seen(result, [SECRET]), "the model saw the secret"
    assert result.structured_content["redactions"] >= 1


@pytest.fixture
def oauth_api(vault: Vault, upstream_ca: trustme.CA) -> Iterator[tuple[Hostile, OAuthServer, str]]:
    """An OAuth service whose API is the hostile upstream, with a live token and a working refresh token."""
    sent = "at-live-7d2c9e4b1a6f80355c1e"
    with OAuthServer.start(upstream_ca) as server:
        api = start_hostile(upstream_ca)
        service = make_service("acme", f"127.0.0.1:{api.port}", local=True)
        config = OAuthConfig(server.token_url, CLIENT_ID, "refresh_token", (), server.authorize_url)
        grant = TokenGrant(Secret(sent), time.time() + 3600, Secret(server.state.issue_refresh_token()), None)
        oauth_store.register(vault, service, config, Secret(CLIENT_SECRET), grant)
        yield api, server, sent
        api.server.shutdown()
        api.server.server_close()


async def test_call_service_scrubs_the_token_it_sent_when_a_401_refreshes_it_mid_call(
    client: Client, oauth_api: tuple[Hostile, OAuthServer, str]
) -> None:
    """A 401 makes the proxy refresh the token before the answer is complete; call_service used
    to scrub what the model reads for the vault's token after the call (the new one), so the old
    one, quoted in a spelling the proxy's stream scrubber does not list, reached the model."""
    api, server, sent = oauth_api
    result = await call(client, "acme", api.url("/refused-stream"))
    assert result.structured_content["status"] == 401
    assert server.state.hits == {"refresh_token": 1}  # the vault holds a new token once the answer is read
    assert not spellings_seen(result, [sent]), "the model saw the token that was sent"
    assert result.structured_content["redactions"] >= 1
