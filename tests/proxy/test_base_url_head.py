"""The base-URL front's head stage (proxy/base_url.py) in process: what every exit, refusal or
rewrite, leaves on the request that later stages and the audit see."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from clavis_mcp.addons.client_auth import ClientAuth
from clavis_mcp.proxy.base_url import FRONT, BaseUrlFront
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import SECRET, make_service

KEY = "agent-key-0123456789abcdef"
PORT = 8899


@pytest.fixture
def front(vault: Vault) -> BaseUrlFront:
    vault.add_service(make_service("alpha", "api.alpha.test", "api2.alpha.test:8443"), validate_secret(SECRET))
    vault.add_service(make_service("wild", "*.wild.test"), validate_secret(SECRET))
    tokens = lambda: {"ci": KEY}  # noqa: E731
    stage = BaseUrlFront(ClientAuth(tokens, vault), tokens, vault)
    stage.proxy_ports = frozenset({PORT})
    return stage


def head(path: str, *fields: tuple[str, str], host: str = "127.0.0.1") -> http.HTTPFlow:
    flow = tflow.tflow()
    headers = tuple((name.encode(), value.encode()) for name, value in fields)
    flow.request = http.Request.make("GET", f"http://{host}:{PORT}{path}")
    flow.request.headers.fields = headers  # as the client sent them (make adds a Content-Length)
    flow.request.authority = ""
    flow.metadata[FRONT] = True
    return flow


AUTH = ("Authorization", f"Bearer {KEY}")
PROXY = ("Proxy-Authorization", "Basic eDp5")
COOKIE = ("Cookie", f"k={KEY}")


@pytest.mark.parametrize(
    ("path", "host", "status"),
    [
        ("/a/x", "127.0.0.1", 400),
        ("/v1/models", "127.0.0.1", 400),
        ("/s/alpha/v1", "evil.test", 421),
        ("/s/alpha/v1?x=a" + KEY, "127.0.0.1", 400),
        ("/s/nope/v1", "127.0.0.1", 404),
        ("/s/alpha@other.test/v1", "127.0.0.1", 403),
        ("/s/alpha@a%20b/v1", "127.0.0.1", 400),
        ("/s/wild/v1", "127.0.0.1", 403),
    ],
    ids=[
        "malformed",
        "not-base-url",
        "not-loopback",
        "key-in-query",
        "unknown",
        "foreign-host",
        "bad-host",
        "wildcard",
    ],
)
def test_a_refused_request_keeps_neither_proxy_credentials_nor_the_key(
    front: BaseUrlFront, path: str, host: str, status: int
) -> None:
    flow = head(path, AUTH, PROXY, COOKIE, ("Accept", "*/*"), host=host)
    front.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == status
    names = [name.lower() for name, _ in flow.request.headers.fields]
    assert b"proxy-authorization" not in names
    if status != 421 and path.startswith("/s/"):  # authenticated: the key's headers are gone too
        assert [value for _, value in flow.request.headers.fields if KEY.encode() in value] == []
    assert KEY not in flow.request.path


def test_an_unknown_key_learns_nothing_about_services(front: BaseUrlFront) -> None:
    for path in ("/s/alpha/v1", "/s/nope/v1"):
        flow = head(path, ("Authorization", "Bearer wrong"))
        front.requestheaders(flow)
        assert flow.response is not None and flow.response.status_code == 401
        assert flow.response.headers["WWW-Authenticate"] == 'Bearer realm="clavis-mcp"'


@pytest.mark.parametrize(
    ("path", "fields", "url"),
    [
        ("/s/alpha/v1/chat?n=1", (AUTH, PROXY, COOKIE), "https://api.alpha.test/v1/chat?n=1"),
        (f"/a/{KEY}/s/alpha@api2.alpha.test:8443?key={KEY}", (), "https://api2.alpha.test:8443/"),
        ("/s/alpha/v1?key=" + KEY + "&n=2", (("x-api-key", KEY),), "https://api.alpha.test/v1?n=2"),
        ("/s/wild@x.wild.test/v1", (("X-Clavis-Agent", KEY), ("X-Clavis-Agent", "other")), "https://x.wild.test/v1"),
    ],
    ids=["bearer", "path-key-and-query", "api-key-header", "agent-header"],
)
def test_a_base_url_request_is_rewritten_to_its_upstream_without_the_key(
    front: BaseUrlFront, path: str, fields: tuple[tuple[str, str], ...], url: str
) -> None:
    flow = head(path, *fields, ("Accept", "*/*"))
    front.requestheaders(flow)
    request = flow.request
    assert flow.response is None
    assert request.url == url
    assert request.headers.fields[0] == (b"Host", url.split("/")[2].encode())
    assert [name for name, _ in request.headers.fields[1:]] == [b"Accept"]
    assert request.authority == ""
