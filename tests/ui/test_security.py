"""The page's door, with a plain HTTP client: session header, Host, Origin, CSRF, CSP, loopback."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest

from clavis_mcp.ui.guard import CSP, SESSION_HEADER, SHELL, csrf_token
from clavis_mcp.ui.server import Page
from clavis_mcp.vault.approvals import Approvals


def test_the_page_listens_on_the_loopback_only(page: Page) -> None:
    with pytest.raises(OSError):
        # Another address of this machine, if it has one, must not answer.
        other = socket.gethostbyname(socket.gethostname())
        if other.startswith("127."):
            raise OSError("no non-loopback address to try")
        socket.create_connection((other, page.port), timeout=2).close()


def test_a_request_without_the_token_is_refused(page: Page) -> None:
    for path in ("/", "/records", "/events", "/approvals.json"):
        response = httpx.get(page.origin + path, trust_env=False)
        assert response.status_code == 401, path
        assert "access token" in response.text
        assert "<" not in response.text  # nothing of the page, not even its shell


def test_a_wrong_token_is_refused_in_the_header_and_the_query_is_no_key(page: Page) -> None:
    wrong = page.token[:-1] + ("A" if page.token[-1] != "A" else "B")
    assert httpx.get(page.origin + "/", headers={SESSION_HEADER: wrong}, trust_env=False).status_code == 401
    assert httpx.get(f"{page.origin}/?token={page.token}", trust_env=False).status_code == 401


def test_a_navigation_without_the_token_gets_only_the_shell(page: Page) -> None:
    response = httpx.get(page.origin + "/records", headers={"Accept": "text/html"}, trust_env=False)
    assert response.status_code == 200 and response.text == SHELL + "\n"
    assert "set-cookie" not in response.headers and "csrf" not in response.text


def test_the_pages_script_and_style_hold_no_data_and_need_no_token(page: Page) -> None:
    for path in ("/static/ui.css", "/static/ui.js"):
        assert httpx.get(page.origin + path, trust_env=False).status_code == 200, path


def test_the_session_header_opens_every_page(client: httpx.Client) -> None:
    for path in ("/", "/records", "/approvals", "/static/ui.css", "/static/ui.js"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "127.0.0.1.nip.io:{port}", "127.0.0.1:{other}", "127.0.0.1", "localhost.evil:{port}"],
    ids=["rebinding-name", "lookalike", "other-port", "no-port", "suffix"],
)
def test_a_host_that_is_not_this_page_is_refused_dns_rebinding(client: httpx.Client, page: Page, host: str) -> None:
    response = client.get("/", headers={"Host": host.format(port=page.port, other=page.port + 1)})
    assert response.status_code == 421
    assert "Host" in response.text


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}"], ids=["ip", "localhost"])
def test_the_loopback_names_are_accepted_as_host(client: httpx.Client, page: Page, host: str) -> None:
    assert client.get("/", headers={"Host": host.format(port=page.port)}).status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}"],
    ids=["other-site", "null", "other-port", "other-scheme"],
)  # fmt: skip
def test_a_request_with_a_wrong_origin_is_refused(client: httpx.Client, page: Page, origin: str) -> None:
    response = client.get("/records", headers={"Origin": origin.format(port=page.port)})
    assert response.status_code == 403
    assert "origin" in response.text


def test_a_request_another_site_made_is_refused_by_fetch_metadata(client: httpx.Client) -> None:
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_a_cross_site_form_post_is_refused(client: httpx.Client, page: Page) -> None:
    # What a form on another site sends: its own Origin, no CSRF header.
    form = {"csrf": "guess"}
    assert client.post("/records", data=form, headers={"Origin": "http://evil.example"}).status_code == 403
    # Same origin but no CSRF token (a form cannot set the header): refused too.
    response = client.post("/records", data=form, headers={"Origin": page.origin})
    assert response.status_code == 403 and "CSRF" in response.text


def test_a_state_change_needs_the_csrf_token_and_an_origin(client: httpx.Client, page: Page) -> None:
    good = csrf_token(page.token)
    assert client.post("/records", headers={"X-CSRF-Token": good[:-1] + "0"}).status_code == 403
    assert client.post("/records", headers={"X-CSRF-Token": good}).status_code == 403  # no Origin
    passed = client.post("/records", headers={"X-CSRF-Token": good, "Origin": page.origin})
    assert passed.status_code == 405  # past the door: the route takes no POST


def test_the_csrf_token_is_in_the_page_and_is_not_the_access_token(client: httpx.Client, page: Page) -> None:
    text = client.get("/").text
    assert f'<meta name="csrf-token" content="{csrf_token(page.token)}">' in text
    assert page.token not in text


def test_every_answer_carries_a_strict_content_security_policy(client: httpx.Client, page: Page) -> None:
    answers = [client.get("/"), client.get("/records"), client.get("/static/ui.css"), client.get("/nowhere"),
               httpx.get(page.origin + "/", trust_env=False)]  # fmt: skip
    for response in answers:
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
    assert "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP


def test_the_page_makes_no_third_party_request(client: httpx.Client) -> None:
    for path in ("/", "/records?q=x", "/static/ui.css", "/static/ui.js"):
        text = client.get(path).text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http:" not in text and "https:" not in text and "url(" not in text, path
        for link in re.findall(r'(?:src|href|action)="([^"]*)"', text):
            assert link.startswith("/") and not link.startswith("//"), (path, link)


def test_an_approval_needs_the_csrf_token_and_the_pages_origin(client: httpx.Client, page: Page, home: Path) -> None:
    queue = Approvals(home)
    held = queue.hold(service="openai", agent="ci-bot", method="POST", host="api.openai.com",
                      url="https://api.openai.com/v1/x", preview="", timeout=60)  # fmt: skip
    form = {"decision": "approve"}
    forged = [
        {"Origin": "http://evil.example", "X-CSRF-Token": csrf_token(page.token)},  # another site
        {"Origin": page.origin},  # a form: no header
        {"Origin": page.origin, "X-CSRF-Token": "0" * 64},  # a guess
        {"X-CSRF-Token": csrf_token(page.token)},  # no Origin
    ]
    for headers in forged:
        assert client.post(f"/approvals/{held.id}", data=form, headers=headers).status_code == 403, headers
    assert queue.get(held.id).state == "pending"
    good = {"Origin": page.origin, "X-CSRF-Token": csrf_token(page.token)}
    answer = client.post(f"/approvals/{held.id}", data=form, headers=good)
    assert answer.status_code == 200 and answer.json()["decided"]["decided_by"] == "ui"
    again = client.post(f"/approvals/{held.id}", data={"decision": "deny"}, headers=good)
    assert again.status_code == 409 and "already approved by ui" in again.json()["error"]
    queue.close()
