"""DestinationCheck reads the Host it judges from its one scan of the header fields: the same
value mitmproxy's ``request.host_header`` gives, in HTTP/1 and HTTP/2 alike."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow, tutils

from clavis_mcp.addons.destination import DestinationCheck, decide
from clavis_mcp.addons.flowmeta import SERVICE
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import SECRET, make_service

CASES = [
    ("HTTP/1.1", b"", [b"api.example.com"], "api"),
    ("HTTP/1.1", b"", [b"evil.test"], 421),
    ("HTTP/1.1", b"", [b"api.example.com", b"api.example.com"], 400),  # joined, as Headers.get joins them
    ("HTTP/1.1", b"", [], "api"),
    ("HTTP/2.0", b"api.example.com", [b"evil.test"], "api"),  # :authority is HTTP/2's Host
    ("HTTP/2.0", b"evil.test", [b"api.example.com"], 421),
    ("HTTP/2.0", b"", [b"evil.test"], 421),  # no :authority: the Host header
    ("HTTP/2.0", b"", [], "api"),
]


def flow_with(version: str, authority: bytes, hosts: list[bytes]) -> http.HTTPFlow:
    request = tutils.treq(host="api.example.com", port=443, scheme=b"https", authority=authority,
                          http_version=version.encode(), headers=[(b"Host", host) for host in hosts])  # fmt: skip
    flow = tflow.tflow(req=request)
    flow.client_conn.tls, flow.client_conn.sni = True, "api.example.com"
    return flow


@pytest.mark.parametrize(("version", "authority", "hosts", "expected"), CASES, ids=[str(c[:3]) for c in CASES])
def test_the_host_judged_is_the_requests_host_header(
    vault: Vault, version: str, authority: bytes, hosts: list[bytes], expected: int | str
) -> None:
    vault.add_service(make_service("api", "api.example.com"), validate_secret(SECRET))
    check, flow = DestinationCheck(vault), flow_with(version, authority, hosts)
    verdict = decide(
        vault.snapshot(), method="GET", scheme="https", host="api.example.com", port=443,
        host_header=flow.request.host_header, sni="api.example.com", selected=None,
        authority=flow.request.authority, path=flow.request.path,
    )  # fmt: skip
    with taddons.context(check):
        check.requestheaders(flow)
    judged = flow.response.status_code if flow.response is not None else flow.metadata[SERVICE]
    assert judged == expected == (verdict.service.name if verdict.service else verdict.status)
