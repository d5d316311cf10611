"""Inputs an outsider or an admin can send that used to crash a replica (500 and a traceback in its
log) or cost it a large parse before any authentication (review findings L3, L4, L5)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import TeamServer

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def anyone(server: TeamServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, trust_env=False)


def test_what_used_to_crash_the_server_is_a_400_that_says_what_is_wrong_and_logs_no_traceback(
    server: TeamServer,
) -> None:
    with anyone(server) as outsider, server.admin() as admin:
        answers = [
            (outsider.post("/v1/auth/login", content=b"[" * 100_000), "larger than 4096 bytes"),
            (admin.post("/v1/admin/users", content=b"[" * 100_000), "nested too deeply"),
            (outsider.post("/v1/auth/login", json={"email": "a\x00@b.c", "password": PASSWORD}), "control characters"),
            (admin.post("/v1/admin/keys", json={"name": "k", "expires_in_seconds": 10**20}), "between 1 and"),
            (admin.get("/v1/audit", params={"limit": "-1"}), "from 1 to 1000"),
            (admin.get("/v1/audit", params={"limit": "0"}), "from 1 to 1000"),
            (admin.get("/v1/audit", params={"limit": "many"}), "from 1 to 1000"),
            (admin.patch("/v1/admin/users/a%00@b.c", json={"sign_out": True}), "no user"),
        ]
    for answer, expected in answers:
        assert answer.status_code in (400, 404, 413) and expected in answer.json()["detail"], answer.text
    assert "Traceback" not in server.log_text() and "internal error" not in server.log_text()


@pytest.mark.parametrize(
    "email",
    ["col:on@example.test", "tab\t@example.test", "bell\x07@example.test", "c1\x85@example.test"],
    ids=["colon", "tab", "control", "c1-control"],
)
def test_an_address_with_a_colon_or_a_control_character_is_refused_for_new_users_and_logins(
    server: TeamServer, email: str
) -> None:
    """The principal ``user/<email>`` is the embedded proxy's Basic-auth user: it ends at a colon."""
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": email, "password": PASSWORD, "role": "admin"})
    with anyone(server) as outsider:
        login = outsider.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    for answer in (made, login):
        assert answer.status_code == 400 and "without spaces, control characters or ':'" in answer.json()["detail"]


def test_a_login_body_over_a_few_kib_is_refused_before_it_is_parsed(server: TeamServer) -> None:
    padded = {"email": "someone@example.test", "password": PASSWORD, "pad": "x" * 5000}
    with anyone(server) as outsider:
        big = outsider.post("/v1/auth/login", json=padded)
        huge = outsider.post("/v1/auth/login", content=b"[{}," * (2 * 1024 * 1024) + b"{}]")
        normal = outsider.post("/v1/auth/login", json={"email": "someone@example.test", "password": PASSWORD})
    for answer in (big, huge):
        assert answer.status_code == 413 and "larger than 4096 bytes" in answer.json()["detail"]
    assert normal.status_code == 401  # an ordinary login is still read
