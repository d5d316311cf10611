"""SECURITY-CASES.md sections A-D against the real embedded proxy and a hostile loopback upstream.

Each test is named for its case. "No injection" is checked on what the upstream recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.certs import LocalCA
from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.vault import AuditLog, Secret, Vault, validate_secret
from clavis_mcp.vault.redaction.redactor import forms_of
from tests.conftest import PROXY_TOKEN, PROXY_USER, make_service, proxy_client
from tests.leak_sweep import captured_log
from tests.proxy.conftest import (
    A_HOST,
    B_HOST,
    LOOKALIKES,
    PROXY_AUTH,
    SECRET_A,
    SECRET_B,
    WILD_DOMAIN,
    RawClient,
    Upstream,
    proxy_to,
)
from tests.proxy.upstreams import reflecting_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def no_secret_anywhere(home: Path, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Case 26, after every test here: no spelling of either secret in any log line (captured at
    DEBUG, more than production emits) or in any audit file."""
    caplog.set_level(logging.DEBUG)
    yield
    forms = forms_of(SECRET_A) | forms_of(SECRET_B)
    texts = {"log": captured_log(caplog).encode()}
    texts |= {path.name: path.read_bytes() for path in home.glob("audit*") if path.is_file()}
    leaks = {(where, form) for where, text in texts.items() for form in forms if form in text}
    assert not leaks, f"secret spellings found in: {sorted({where for where, _ in leaks})}"


def records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


# -- A. Destination ------------------------------------------------------------------------------


async def test_case01_connect_to_one_host_then_host_header_of_another_is_421(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{B_HOST}:443", home, sni=B_HOST)).status == 200
    response = await raw.send(f"GET /v1 HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 421
    assert "does not match" in response.body.decode()
    assert reflector.received == []


async def test_case01_connect_to_a_host_no_service_owns_is_refused_before_tls(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    raw = await RawClient.connect(routed_proxy)
    response = await raw.tunnel("evil.test:443", home, sni=A_HOST)
    await raw.close()
    assert response.status == 403
    assert "no service is registered for https://evil.test:443" in response.headers["x-clavis-refused"]
    assert reflector.received == []


@pytest.mark.parametrize(
    ("connect", "sni", "host"),
    [(A_HOST, B_HOST, A_HOST), (A_HOST, A_HOST, B_HOST)],
    ids=["sni-names-another-service", "host-names-another-service"],
)
async def test_case02_sni_and_host_header_must_agree(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, connect: str, sni: str, host: str
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{connect}:443", home, sni=sni)).status == 200
    response = await raw.send(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 421
    assert reflector.received == []


async def test_case03_absolute_form_url_host_differing_from_host_header_is_refused(
    routed_proxy: EmbeddedProxy, reflector: Upstream
) -> None:
    raw = await RawClient.connect(routed_proxy)
    request = f"GET http://{A_HOST}/v1 HTTP/1.1\r\nHost: {B_HOST}\r\nProxy-Authorization: {PROXY_AUTH}\r\n\r\n"
    response = await raw.send(request.encode())
    await raw.close()
    assert response.status == 421
    assert reflector.received == []


async def test_case04_keep_alive_second_request_to_another_host_gets_no_injection(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    first = await raw.send(f"GET /first HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    second = await raw.send(f"GET /second HTTP/1.1\r\nHost: {B_HOST}\r\n\r\n".encode())
    await raw.close()
    assert first.status == 200 and second.status == 421
    assert [r.path for r in reflector.received] == ["/first"]
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]


@pytest.mark.parametrize("host", LOOKALIKES, ids=LOOKALIKES)
async def test_case05_lookalike_hosts_get_no_injection(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, host: str
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://{host}/v1")
    assert reflector.received == []


async def test_case05_userinfo_naming_the_service_host_goes_nowhere(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(f"https://{A_HOST}@evil.test/v1")
    assert reflector.received == []


@pytest.mark.parametrize(
    "target",
    ["api%2ealpha.example:443", "API.ALPHA.EXAMPLE%00.evil.test:443", "127.1:443", "0x7f.0.0.1:443", "2130706433:443"],
    ids=["percent-encoded-dot", "nul-byte", "short-ipv4", "hex-ipv4", "integer-ipv4"],
)
async def test_case05_case06_odd_spellings_of_a_destination_are_refused(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, target: str
) -> None:
    raw = await RawClient.connect(routed_proxy)
    response = await raw.tunnel(target, home, sni=None)
    await raw.close()
    assert response.status in (400, 403)
    assert reflector.received == []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "100.64.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1"],
    ids=["loopback", "v4-mapped-loopback", "metadata", "cgnat", "rfc1918-10", "rfc1918-172", "rfc1918-192"],
)
async def test_case06_private_addresses_are_refused_unless_the_service_is_local(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, host: str
) -> None:
    rule = f"[{host}]" if ":" in host else host
    services.add_service(make_service("lan", rule), validate_secret("lan-secret-0123456789"))
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{rule}:443", home, sni=None)).status == 200
    response = await raw.send(f"GET / HTTP/1.1\r\nHost: {rule}\r\n\r\n".encode())
    await raw.close()
    assert response.status == 403
    assert "--local" in response.headers["x-clavis-refused"]


async def test_case07_a_name_resolving_to_a_private_address_is_refused_at_dial_time(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    services.add_service(make_service("internal", f"internal.alpha.example:{reflector.port}"),
                         validate_secret("internal-secret-0123456789"))  # fmt: skip
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://internal.alpha.example:{reflector.port}/")
    assert response.status_code == 502
    assert "resolves to the private or loopback address 127.0.0.1" in response.text
    assert reflector.received == []
    assert records(home)[-1]["decision"] == "refused"


async def test_case07_a_local_service_dials_the_address_that_was_checked(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    services.add_service(make_service("lan", f"lan.alpha.example:{reflector.port}", local=True),
                         validate_secret("lan-secret-0123456789"))  # fmt: skip
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://lan.alpha.example:{reflector.port}/x")
    assert response.status_code == 200
    assert reflector.credentials_seen() == ["Bearer lan-secret-0123456789"]
    assert dict(reflector.received[0].headers)["Host"] == f"lan.alpha.example:{reflector.port}"


@pytest.mark.parametrize("url", [f"https://{A_HOST}:8443/v1", f"http://{A_HOST}/v1"], ids=["other-port", "plain-http"])
async def test_case08_same_host_on_another_port_or_scheme_gets_no_injection(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, url: str
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        try:
            response = await client.get(url)
        except httpx.ProxyError as exc:
            assert "403" in str(exc)
        else:
            assert response.status_code == 403
    assert reflector.received == []


async def test_case09_requests_addressed_to_the_proxy_itself_are_refused(
    routed_proxy: EmbeddedProxy, home: Path
) -> None:
    for host in ("127.0.0.1", "localhost"):
        raw = await RawClient.connect(routed_proxy)
        tunnel = await raw.tunnel(f"{host}:{routed_proxy.port}", home, sni=None)
        await raw.close()
        assert tunnel.status == 403 and "own proxy port" in tunnel.headers["x-clavis-refused"]
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"http://127.0.0.1:{routed_proxy.port}/")
    assert response.status_code == 403 and "own proxy port" in response.text


async def test_case10_no_request_to_b_carries_a_secret_whatever_the_client_sends(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    tricks = [
        {"X-Clavis-Service": "alpha"},
        {"x-clavis-service": "alpha", "Authorization": "Bearer agent-supplied"},
        {"X_Clavis_Service": "alpha"},
    ]
    async with proxy_client(routed_proxy, home) as client:
        results = [await client.get(f"https://{B_HOST}/v1", headers=headers) for headers in tricks]
    refused = [r for r in results if r.status_code == 403]
    assert all(r.status_code in (200, 403) for r in results)
    assert refused and "not a host of service 'alpha'" in refused[0].text
    assert SECRET_A not in repr([r.headers for r in reflector.received])
    assert all(value == SECRET_B for value in reflector.credentials_seen())


# -- B. Request shaping --------------------------------------------------------------------------


async def test_case12_case13_case14_client_credentials_are_replaced_never_kept(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    headers = [
        ("Authorization", "Bearer agent-own-key"),
        ("authorization", "Bearer second-copy"),
        ("x-api-key", "agent-key"),
        ("X_API_KEY", "agent-key-underscore"),
        ("x.api.key", "agent-key-dots"),
    ]
    async with proxy_client(routed_proxy, home) as client:
        await client.get(f"https://{A_HOST}/v1", headers=headers)
        await client.get(f"https://{B_HOST}/v1", headers=headers)
    a, b = reflector.received
    assert [v for k, v in a.headers if k.lower() == "authorization"] == [f"Bearer {SECRET_A}"]
    assert [v for k, v in b.headers if k.lower().replace("_", "-").replace(".", "-") == "x-api-key"] == [SECRET_B]
    assert not any(k.lower() == "authorization" for k, _ in b.headers)


async def test_case15_query_auth_sends_exactly_one_parameter_ours(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    from clavis_mcp.vault import AuthSpec, Service, parse_hosts

    services.remove_service("beta")
    services.add_service(
        Service(name="q2", auth=AuthSpec(kind="query", name="key"), hosts=parse_hosts([f"files.{WILD_DOMAIN}"])),
        validate_secret("query-secret-0123456789"),
    )
    async with proxy_client(routed_proxy, home) as client:
        await client.get(f"https://files.{WILD_DOMAIN}/v1?key=agent&x=1&key=again")
    (received,) = reflector.received
    assert received.path == "/v1?x=1&key=query-secret-0123456789"


async def test_case16_proxy_and_forwarding_headers_never_reach_upstream(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    headers = {
        "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil.test",
        "Forwarded": "for=10.0.0.1",
        "Via": "1.1 evil",
        "X-Real-IP": "10.0.0.1",
        "X-Clavis-Anything": "x",
    }
    async with proxy_client(routed_proxy, home) as client:
        await client.get(f"https://{A_HOST}/v1", headers=headers)
    sent = {k.lower() for k, _ in reflector.received[0].headers}
    assert not sent & {"proxy-authorization", "x-clavis-service", "x-clavis-anything", "via", "forwarded",
                       "x-forwarded-for", "x-forwarded-host", "x-real-ip"}  # fmt: skip


async def test_case17_a_stored_credential_with_crlf_never_splits_a_header(
    vault: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    vault.add_service(make_service("alpha", A_HOST), Secret("abc\r\nX-Injected: 1"))  # bypasses validation
    async with proxy_to(vault, audit, home, reflector) as proxy, proxy_client(proxy, home) as client:
        response = await client.get(f"https://{A_HOST}/v1")
    assert response.status_code == 500 and "malformed" in response.text
    assert reflector.received == []


@pytest.mark.parametrize(
    "framing",
    [
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    ],
    ids=["cl-and-te", "duplicate-cl", "duplicate-te"],
)
async def test_case18_request_smuggling_shapes_get_400_and_nothing_is_sent(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, framing: str
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(f"POST /v1 HTTP/1.1\r\nHost: {A_HOST}\r\n{framing}\r\n0\r\n\r\n".encode())
    await raw.close()
    assert response.status == 400
    assert reflector.received == []


@pytest.mark.parametrize(
    ("path", "status", "sent"),
    [
        ("/allowed/x", 200, "/allowed/x"),
        ("/allowed/../admin", 403, None),
        ("/allowed/%2e%2e/admin", 403, None),
        ("/allowed/%2E%2E/admin", 403, None),
        ("//admin", 403, None),
        ("//allowed//x/./y", 200, "/allowed/x/y"),
        ("/allowed%2f..%2fadmin", 400, None),
        ("/allowed\\..\\admin", 400, None),
    ],
    ids=["inside", "dot-dot", "encoded-dot-dot", "encoded-dot-dot-upper", "double-slash", "normalised-is-sent",
         "encoded-slash", "backslash"],
)  # fmt: skip
async def test_case19_path_policy_judges_the_normalised_path_and_sends_it(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, path: str, status: int,
    sent: str | None,
) -> None:  # fmt: skip
    services.remove_service("alpha")
    services.add_service(make_service("alpha", A_HOST, path_prefixes=("/allowed",), methods=("GET",)),
                         validate_secret(SECRET_A))  # fmt: skip
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(f"GET {path} HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == status
    assert [r.path for r in reflector.received] == ([sent] if sent else [])


async def test_case19_method_policy_refuses_other_methods(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    services.remove_service("alpha")
    services.add_service(make_service("alpha", A_HOST, methods=("GET",)), validate_secret(SECRET_A))
    async with proxy_client(routed_proxy, home) as client:
        response = await client.post(f"https://{A_HOST}/v1", content=b"x")
    assert response.status_code == 405 and "allows only the methods GET" in response.text
    assert reflector.received == []


async def test_trace_and_track_are_refused(routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream) -> None:
    async with proxy_client(routed_proxy, home) as client:
        for method in ("TRACE", "TRACK"):
            assert (await client.request(method, f"https://{A_HOST}/")).status_code == 405
    assert reflector.received == []


# -- C. The secret coming back -------------------------------------------------------------------


async def test_case20_case21_reflection_in_body_and_headers_is_redacted(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        echoed = await client.get(f"https://{A_HOST}/echo")
        reflected = await client.get(f"https://{A_HOST}/headers")
    assert "[REDACTED:alpha]" in echoed.text and SECRET_A not in echoed.text
    for name in ("location", "set-cookie", "www-authenticate", "x-echo"):
        assert "[REDACTED:alpha]" in reflected.headers[name], name
    assert SECRET_A not in repr(reflected.headers.raw)
    assert int(reflected.headers["x-clavis-redactions"]) >= 4


async def test_case22_encoded_reflections_are_redacted(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://{A_HOST}/encoded")
    forms = response.json()
    assert all("[REDACTED:alpha]" in value for value in forms.values()), forms
    assert SECRET_A not in response.text


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
async def test_case23_compressed_responses_are_redacted(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, encoding: str
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://{A_HOST}/compressed/{encoding}", headers={"Accept-Encoding": encoding})
    assert response.json() == {"echo": "[REDACTED:alpha]"}


@pytest.mark.parametrize("encoding", ["identity", "gzip", "br", "zstd"])
async def test_case23_chunked_responses_split_mid_secret_are_redacted_while_streamed(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, encoding: str
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://{A_HOST}/chunked/{encoding}", headers={"Accept-Encoding": encoding})
    assert json.loads(response.content) == {"echo": "[REDACTED:alpha]"}
    assert records(home)[-1]["redactions"] == 1


async def test_case23_server_sent_events_split_mid_secret_are_redacted_as_they_stream(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    events = []
    async with proxy_client(routed_proxy, home) as client:
        async with client.stream("GET", f"https://{A_HOST}/sse") as response:
            assert response.headers["content-type"] == "text/event-stream"
            async for line in response.aiter_lines():
                events.append(line)
    assert 'data: {"token": "[REDACTED:alpha]"}' in events
    assert SECRET_A not in "\n".join(events)


async def test_case23_a_stream_is_passed_on_while_it_is_still_open(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    """The upstream holds the stream open until the client has read the first event through the
    proxy: a proxy that buffered the stream would make it wait in vain (gate_seen False)."""
    lines = []
    async with proxy_client(routed_proxy, home) as client:
        async with client.stream("GET", f"https://{A_HOST}/sse-gated") as response:
            async for line in response.aiter_lines():
                lines.append(line)
                if line.startswith("data: {"):
                    reflector.gate.set()
    assert reflector.gate_seen == [True]
    assert lines[0] == 'data: {"token": "[REDACTED:alpha]"}' and "data: [DONE]" in lines


async def test_case23_a_large_body_is_streamed_and_redacted(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        response = await client.get(f"https://{A_HOST}/big")
    assert SECRET_A.encode() not in response.content
    assert b"[REDACTED:alpha]" in response.content
    assert len(response.content) == 2_400_000 + len(b"[REDACTED:alpha]")


@pytest.mark.parametrize("path", ["/status/500", "/status/401", "/reset"], ids=["5xx", "401", "connection-reset"])
async def test_case25_error_paths_leak_no_secret(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, path: str
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        try:
            response = await client.get(f"https://{A_HOST}{path}")
            text = response.text + repr(response.headers.raw)
        except httpx.HTTPError as exc:
            text = str(exc)
    assert SECRET_A not in text
    assert SECRET_A not in (home / "audit.jsonl").read_text()


async def test_rate_limit_headers_are_recorded_per_service(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    from clavis_mcp.vault.limits.ratelimits import latest

    async with proxy_client(routed_proxy, home) as client:
        await client.get(f"https://{A_HOST}/ratelimit")
    recorded = latest(services, "alpha")
    assert recorded is not None
    headers, observed_at = recorded
    assert headers == {"x-ratelimit-remaining-requests": "41", "ratelimit": '"default";r=41;t=20', "retry-after": "7"}
    assert observed_at > 0 and latest(services, "beta") is None


# -- D. Local access -----------------------------------------------------------------------------


async def test_case27_revoking_a_client_takes_effect_inside_an_open_tunnel(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    tokens = {PROXY_USER: PROXY_TOKEN}
    async with proxy_to(services, audit, home, reflector, lambda: tokens) as proxy, proxy_client(proxy, home) as client:
        assert (await client.get(f"https://{A_HOST}/one")).status_code == 200
        tokens.clear()
        assert (await client.get(f"https://{A_HOST}/two")).status_code == 407
    assert [r.path for r in reflector.received] == ["/one"]


async def test_case27_an_agent_revoked_and_added_again_under_its_name_does_not_keep_its_old_tunnel(
    services: Vault, audit: AuditLog, home: Path, reflector: Upstream
) -> None:
    """Replacing a leaked token is `agent revoke ci` then `agent add ci`: the name comes back with a
    new token, and a tunnel the old token opened must not carry on under it."""
    tokens = {PROXY_USER: PROXY_TOKEN}
    async with proxy_to(services, audit, home, reflector, lambda: tokens) as proxy, proxy_client(proxy, home) as client:
        assert (await client.get(f"https://{A_HOST}/one")).status_code == 200
        tokens[PROXY_USER] = PROXY_TOKEN + "-replaced"
        refused = await client.get(f"https://{A_HOST}/two")
    assert refused.status_code == 407 and "was revoked" in refused.text
    assert [r.path for r in reflector.received] == ["/one"]


@pytest.mark.parametrize("problem", ["self-signed", "wrong-name", "expired"])
async def test_case31_bad_upstream_certificates_give_502_and_no_injection(
    services: Vault, audit: AuditLog, home: Path, upstream_ca: trustme.CA, problem: str
) -> None:
    import datetime

    if problem == "self-signed":
        leaf = trustme.CA().issue_cert(A_HOST)
    elif problem == "wrong-name":
        leaf = upstream_ca.issue_cert("somewhere-else.example")
    else:
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
        leaf = upstream_ca.issue_cert(A_HOST, not_before=past - datetime.timedelta(days=30), not_after=past)
    with reflecting_upstream(leaf) as (port, received):
        async with proxy_to(services, audit, home, Upstream(port, received)) as proxy:
            async with proxy_client(proxy, home) as client:
                response = await client.get(f"https://{A_HOST}/v1")
    assert response.status_code == 502
    assert "certificate" in response.text.lower()
    assert received == []
    assert SECRET_A not in response.text + (home / "audit.jsonl").read_text()


# -- Passthrough and reload ----------------------------------------------------------------------


async def test_passthrough_host_is_tunnelled_opaquely_without_a_credential(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, upstream_ca: trustme.CA
) -> None:
    import ssl

    from tests.proxy.conftest import PASSTHROUGH_HOST

    trust = ssl.create_default_context()
    upstream_ca.configure_trust(trust)  # only the upstream's own CA: our CA would mean interception
    async with httpx.AsyncClient(proxy=httpx.Proxy(routed_proxy.url, auth=(PROXY_USER, PROXY_TOKEN)),
                                 verify=trust, trust_env=False) as client:  # fmt: skip
        response = await client.get(f"https://{PASSTHROUGH_HOST}/v1", headers={"Authorization": "Bearer agent-own"})
    assert response.status_code == 200
    assert "x-clavis-audit-id" not in response.headers
    assert reflector.credentials_seen() == ["Bearer agent-own"]


async def test_services_added_by_another_process_are_served_without_restart(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get("https://evil.test/v1")
        other = Vault.open(home)  # a second connection, as the CLI in another process would have
        try:
            other.add_service(make_service("late", "evil.test"), validate_secret("late-secret-0123456789"))
        finally:
            other.close()
        response = await client.get("https://evil.test/v1")
    assert response.status_code == 200
    assert reflector.credentials_seen() == ["Bearer late-secret-0123456789"]


async def test_unauthenticated_refusals_are_audited_without_secrets(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    async with proxy_client(routed_proxy, home, auth=(PROXY_USER, SECRET_A)) as client:
        with pytest.raises(httpx.ProxyError, match="407"):
            await client.get(f"https://{A_HOST}/v1")
    assert reflector.received == []
    assert SECRET_A not in (home / "audit.jsonl").read_text()
    assert records(home)[-1]["status"] == 407


async def test_case30_a_vault_that_fails_mid_request_refuses_instead_of_passing_unchecked(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clavis_mcp.vault import VaultCorrupted

    def corrupted() -> None:
        raise VaultCorrupted("the vault file is damaged; restore it from a backup")

    async with proxy_client(routed_proxy, home) as client:
        assert (await client.get(f"https://{A_HOST}/before")).status_code == 200
        monkeypatch.setattr(services, "snapshot", corrupted)
        response = await client.get(f"https://{A_HOST}/after")
    assert response.status_code == 502
    assert "the vault file is damaged" in response.text
    assert [r.path for r in reflector.received] == ["/before"]


async def test_case32_many_concurrent_clients_are_all_served(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    import asyncio

    async def one(i: int) -> int:
        async with proxy_client(routed_proxy, home) as client:
            return (await client.get(f"https://{A_HOST}/c{i}")).status_code

    statuses = await asyncio.gather(*(one(i) for i in range(40)))
    assert statuses == [200] * 40
    assert len(reflector.credentials_seen()) == 40


async def test_case14_a_foreign_credential_is_stripped_and_audited_by_name_only(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    foreign = "sk-agent-own-key-9999999999"
    async with proxy_client(routed_proxy, home) as client:
        await client.get(f"https://{B_HOST}/v1", headers={"X_Api_Key": foreign})
    record = records(home)[-1]
    assert record["decision"] == "injected"
    assert "removed the client's own X_Api_Key" in str(record["reason"])
    assert foreign not in (home / "audit.jsonl").read_text()
    assert reflector.credentials_seen() == [SECRET_B]


@pytest.mark.parametrize("path", ["/echo", "/headers", "/sse", "/chunked/gzip", "/compressed/br"])
async def test_http2_clients_get_the_same_injection_and_redaction(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, path: str
) -> None:
    import asyncio

    # curl offers h2 first (httpx offers http/1.1 first, and mitmproxy honours the client's order).
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-i", "--http2", "--compressed", "--proxy", f"http://127.0.0.1:{routed_proxy.port}",
        "--proxy-user", f"{PROXY_USER}:{PROXY_TOKEN}", "--cacert", str(LocalCA(home / "certs").cert_path),
        "-w", "\nversion=%{http_version}", f"https://{A_HOST}{path}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(curl.communicate(), 30)
    seen = out.decode(errors="replace")
    assert curl.returncode == 0, err
    assert seen.rstrip().endswith("version=2")
    assert reflector.credentials_seen() == [f"Bearer {SECRET_A}"]
    assert "[REDACTED:alpha]" in seen and SECRET_A not in seen


async def test_case11_services_sharing_a_host_each_get_only_their_paths(
    services: Vault, routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream
) -> None:
    from tests.proxy.conftest import SHARED_HOST

    services.add_service(make_service("shared-v1", SHARED_HOST, path_prefixes=("/v1",)),
                         validate_secret("v1-secret-0123456789abcdef"))  # fmt: skip
    services.add_service(make_service("shared-admin", SHARED_HOST, path_prefixes=("/admin",)),
                         validate_secret("admin-secret-0123456789abcd"))  # fmt: skip
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{SHARED_HOST}:443", home, sni=SHARED_HOST)).status == 200
    statuses = []
    for path in ("/v1/models", "/admin/users", "/v1/../admin/x", "/other"):
        response = await raw.send(f"GET {path} HTTP/1.1\r\nHost: {SHARED_HOST}\r\n\r\n".encode())
        statuses.append(response.status)
    await raw.close()
    assert statuses == [200, 200, 200, 403]
    sent = [(r.path, dict(r.headers)["Authorization"]) for r in reflector.received]
    assert sent == [
        ("/v1/models", "Bearer v1-secret-0123456789abcdef"),
        ("/admin/users", "Bearer admin-secret-0123456789abcd"),
        ("/admin/x", "Bearer admin-secret-0123456789abcd"),
    ]


async def test_a_passthrough_name_resolving_to_a_private_address_is_not_dialled(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, upstream_ca: trustme.CA
) -> None:
    import ssl

    from tests.proxy.conftest import PRIVATE_PASSTHROUGH_HOST

    trust = ssl.create_default_context()
    upstream_ca.configure_trust(trust)
    async with httpx.AsyncClient(proxy=httpx.Proxy(routed_proxy.url, auth=(PROXY_USER, PROXY_TOKEN)),
                                 verify=trust, trust_env=False) as client:  # fmt: skip
        with pytest.raises(httpx.HTTPError):
            await client.get(f"https://{PRIVATE_PASSTHROUGH_HOST}:{reflector.port}/v1")
    assert reflector.received == []  # 127.0.0.1:port is the upstream: only the dial check kept it out


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/empty/204", 204), ("GET", "/empty/304", 304), ("HEAD", "/echo", 200)],
    ids=["204", "304", "head"],
)
async def test_responses_without_a_body_are_not_turned_into_streams(
    routed_proxy: EmbeddedProxy, home: Path, reflector: Upstream, method: str, path: str, status: int
) -> None:
    raw = await RawClient.connect(routed_proxy)
    assert (await raw.tunnel(f"{A_HOST}:443", home, sni=A_HOST)).status == 200
    response = await raw.send(f"{method} {path} HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode(), head=True)
    follow_up = await raw.send(f"GET /after HTTP/1.1\r\nHost: {A_HOST}\r\n\r\n".encode())
    await raw.close()
    assert response.status == status
    assert "transfer-encoding" not in response.headers
    assert follow_up.status == 200  # the connection is still in step: no stray chunk terminator
