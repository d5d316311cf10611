from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils

from clavis_mcp.addons.flowmeta import SERVICE
from clavis_mcp.addons.inject import InjectCredential, strip_plan
from clavis_mcp.vault import AuthSpec, Service, Vault, parse_hosts, validate_secret
from tests.conftest import make_service

SECRET = "sk-inject-0123456789abcdef"


@pytest.mark.parametrize(
    ("names", "credential", "kept"),
    [
        (["Authorization", "authorization", "Accept"], "Authorization", ["Accept"]),
        (["X-Api-Key", "x_api_key", "X.API.KEY", "Accept"], "x-api-key", ["Accept"]),
        (["Proxy-Authorization", "X-Forwarded-For", "Forwarded", "Via", "X-Clavis-Service", "Accept"], None,
         ["Accept"]),
        (["Accept", "Content-Type"], "Authorization", ["Accept", "Content-Type"]),
        (["Accept-Encoding", "accept-encoding", "TE", "te", "Accept"], None, ["Accept"]),
        (["Authorization_", "_authorization", "Authorization.", "X__Api--Key", "Proxy_Authorization_", "Accept"],
         "x-api-key", ["Accept"]),
    ],
    ids=["authorization-case-variants", "key-header-spellings", "proxy-and-forwarding", "ordinary-headers-kept",
         "every-copy-of-a-header-we-set", "separators-at-the-ends-and-in-runs"],
)  # fmt: skip
def test_headers_kept(names: list[str], credential: str | None, kept: list[str]) -> None:
    plan = strip_plan(tuple(name.encode() for name in names), (credential,) if credential else ())
    assert [names[i] for i in plan.kept] == kept == list(plan.names)


def test_the_strip_plan_finds_the_clients_accept_encoding_te_and_credentials() -> None:
    names = (b"Authorization", b"TE", b"X_Api_Key", b"accept-encoding", b"te", b"Accept-Encoding", b"Accept")
    plan = strip_plan(names, ("x-api-key",))
    assert (plan.kept, plan.accept_encoding, plan.te) == ((6,), (3, 5), (1, 4))
    assert plan.credentials == "Authorization, X_Api_Key"


def flow_for(service: str, headers: list[tuple[bytes, bytes]], path: bytes = b"/v1") -> object:
    req = tutils.treq(host="api.example.com", port=443, scheme=b"https", path=path, headers=headers)
    f = tflow.tflow(req=req)
    f.metadata[SERVICE] = service
    return f


def test_client_authorization_is_replaced_not_duplicated(vault: Vault) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = flow_for("svc", [(b"Authorization", b"Bearer agent-key"), (b"authorization", b"Bearer two")])
        addon.request(f)
        assert f.request.headers.get_all("Authorization") == [f"Bearer {SECRET}"]


def test_query_auth_replaces_every_preset_parameter(vault: Vault, home: Path) -> None:
    service = Service(name="q", auth=AuthSpec(kind="query", name="key"), hosts=parse_hosts(["api.example.com"]))
    vault.add_service(service, validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = flow_for("q", [], path=b"/v1?key=agent&x=1&key=again")
        addon.request(f)
        assert f.request.query.get_all("key") == [SECRET]
        assert f.request.query.get("x") == "1"


def test_flow_without_service_is_untouched(vault: Vault) -> None:
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = tflow.tflow()
        before = f.request.headers.copy()
        addon.request(f)
        assert f.request.headers == before


def test_fixed_headers_are_set_replacing_client_copies(vault: Vault) -> None:
    auth = AuthSpec(kind="header", name="x-api-key", extra_headers=(("anthropic-version", "2023-06-01"),))
    vault.add_service(Service(name="fx", auth=auth, hosts=parse_hosts(["api.example.com"])), validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = flow_for("fx", [(b"Anthropic-Version", b"1999-01-01"), (b"anthropic-version", b"again")])
        addon.request(f)
        assert f.request.headers.get_all("anthropic-version") == ["2023-06-01"]
        assert f.request.headers.get_all("x-api-key") == [SECRET]


@pytest.mark.parametrize(
    ("client", "sent"),
    [(None, "identity"), ("gzip, br", "gzip, br"), ("gzip;q=1.0, compress, sdch", "gzip;q=1.0"),
     ("compress", "identity")],
    ids=["absent", "decodable-kept", "undecodable-dropped", "nothing-decodable"],
)  # fmt: skip
def test_accept_encoding_is_narrowed_to_what_redaction_decodes(client: str | None, sent: str) -> None:
    from clavis_mcp.addons.inject import decodable_accept_encoding

    assert decodable_accept_encoding(None if client is None else client.encode()) == sent


@pytest.mark.parametrize(
    ("client", "sent"),
    [([], []), ([(b"TE", b"gzip")], []), ([(b"te", b"trailers, deflate;q=0.5")], ["trailers"]),
     ([(b"TE", b"gzip"), (b"te", b"trailers")], ["trailers"])],
    ids=["absent", "coding-only-dropped", "trailers-kept", "two-copies-become-one"],
)  # fmt: skip
def test_te_is_narrowed_to_trailers_so_no_transfer_coding_is_offered(
    vault: Vault, client: list[tuple[bytes, bytes]], sent: list[str]
) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = flow_for("svc", client)
        addon.request(f)
        assert f.request.headers.get_all("te") == sent


def test_plain_http_gets_no_credential_unless_the_service_allows_it(vault: Vault) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        req = tutils.treq(host="api.example.com", port=80, scheme=b"http", path=b"/v1", headers=[])
        f = tflow.tflow(req=req)
        f.metadata[SERVICE] = "svc"
        addon.request(f)
        assert f.response is not None and f.response.status_code == 403
        assert "Authorization" not in f.request.headers


@pytest.mark.parametrize(
    ("fields", "result"),
    [
        ([(b"Accept", b"*/*"), (b"accept-encoding", b"gzip, sdch"), (b"ACCEPT-ENCODING", b"br")],
         [(b"Accept", b"*/*"), (b"Accept-Encoding", b"gzip, br"), (b"Authorization", f"Bearer {SECRET}".encode())]),
        ([(b"Proxy-Authorization", b"agent"), (b"authorization", b"agent2"), (b"Accept", b"*/*")],
         [(b"Accept", b"*/*"), (b"Accept-Encoding", b"identity"), (b"Authorization", f"Bearer {SECRET}".encode())]),
    ],
    ids=["every-copy-of-a-set-header-replaced", "stripped-spellings-gone"],
)  # fmt: skip
def test_the_headers_sent(vault: Vault, fields: list[tuple[bytes, bytes]], result: list[tuple[bytes, bytes]]) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(SECRET))
    addon = InjectCredential(vault)
    with taddons.context(addon):
        f = flow_for("svc", fields)
        addon.request(f)
        assert list(f.request.headers.fields) == result
