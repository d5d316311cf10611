"""An admin's authority never outlives the login it came with (re-review finding N3): the admin
users a login made are demoted when that login ends, and every admin write checks its caller
again after the request's body arrived."""

from __future__ import annotations

import json
import socket
import time

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.schema import create_schema

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, audit_rows

pytestmark = pytest.mark.e2e

PASSWORD = "boss password 1234"
BACKDOOR_PASSWORD = "backdoor password 1"


def client(server: TeamServer, bearer: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False)


def add_admin(server: TeamServer, email: str) -> None:
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": email, "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text


def login(server: TeamServer, email: str, password: str = PASSWORD) -> str:
    with client(server) as anyone:
        answer = anyone.post("/v1/auth/login", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])


def test_the_reviewers_n1_sequence_an_admin_made_with_an_ended_login_is_demoted_and_named(
    server: TeamServer, team: Bootstrap
) -> None:
    add_admin(server, "boss3@example.test")
    token = login(server, "boss3@example.test")
    with client(server, token) as boss:
        made = boss.post(
            "/v1/admin/users", json={"email": "backdoor@example.test", "password": BACKDOOR_PASSWORD, "role": "admin"}
        )
        assert made.status_code == 201, made.text
    backdoor_token = login(server, "backdoor@example.test", BACKDOOR_PASSWORD)
    with server.admin() as admin:
        demoted = admin.patch("/v1/admin/users/boss3@example.test", json={"role": "member", "password": "new boss 99x"})
        assert demoted.status_code == 200, demoted.text
        assert demoted.json()["demoted_users"] == ["backdoor@example.test"]
        signed_out = admin.patch("/v1/admin/users/boss3@example.test", json={"sign_out": True})
        assert "demoted_users" not in signed_out.json()  # nothing left to demote: the answer keeps its shape
        roles = {u["email"]: u["role"] for u in admin.get("/v1/admin/users").json()["users"]}
    assert roles["backdoor@example.test"] == "member"
    with client(server, backdoor_token) as old:  # the backdoor's own login ended with its demotion
        assert old.get("/v1/admin/users").status_code == 401
    with client(server, login(server, "backdoor@example.test", BACKDOOR_PASSWORD)) as backdoor:
        assert backdoor.get("/v1/admin/users").status_code == 403
        assert (
            backdoor.post("/v1/admin/keys", json={"name": "bd-key", "services": [], "role": "admin"}).status_code == 403
        )
        taken = backdoor.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"password": "taken over password 1"})
        assert taken.status_code == 403
    reasons = [json.loads(r)["reason"] for r in audit_rows(team) if json.loads(r).get("action") == "user-role"]
    assert "backdoor@example.test as member (made with the logins of boss3@example.test, which ended)" in reasons


def test_admins_made_with_a_key_from_an_ended_login_are_demoted_with_the_key(server: TeamServer) -> None:
    add_admin(server, "boss@example.test")
    with client(server, login(server, "boss@example.test")) as boss:
        key = boss.post("/v1/admin/keys", json={"name": "boss-side", "services": [], "role": "admin"}).json()["key"]
    with client(server, key) as side:
        made = side.post("/v1/admin/users", json={"email": "side@example.test", "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text
    with client(server, login(server, "side@example.test")) as side_user:  # and what that admin made in turn
        made = side_user.post(
            "/v1/admin/users", json={"email": "third@example.test", "password": PASSWORD, "role": "admin"}
        )
        assert made.status_code == 201, made.text
    with client(server, login(server, "boss@example.test")) as boss:
        assert boss.post("/v1/auth/logout").status_code == 204
    with server.admin() as admin:
        roles = {u["email"]: u["role"] for u in admin.get("/v1/admin/users").json()["users"]}
    assert roles["side@example.test"] == roles["third@example.test"] == "member"
    assert roles["boss@example.test"] == "admin"


def test_admins_made_under_an_earlier_login_or_by_the_deployment_key_are_left_alone(server: TeamServer) -> None:
    add_admin(server, "boss@example.test")
    with client(server, login(server, "boss@example.test")) as boss:
        made = boss.post("/v1/admin/users", json={"email": "early@example.test", "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text
        assert boss.post("/v1/auth/logout").status_code == 204  # demotes early@: made with this login
    with server.admin() as admin:
        assert admin.patch("/v1/admin/users/early@example.test", json={"role": "admin"}).status_code == 200
        signed_out = admin.patch("/v1/admin/users/boss@example.test", json={"sign_out": True})
        assert "demoted_users" not in signed_out.json()  # early@ was made with a login that had ended before
        roles = {u["email"]: u["role"] for u in admin.get("/v1/admin/users").json()["users"]}
    assert roles["early@example.test"] == "admin"


def test_ending_a_login_cannot_demote_the_last_admin_users(server: TeamServer) -> None:
    with client(server, login(server, ADMIN_EMAIL, ADMIN_PASSWORD)) as first:
        made = first.post("/v1/admin/users", json={"email": "only@example.test", "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text
    with server.admin() as admin:
        refused = admin.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"role": "member"})
        assert refused.status_code == 409, refused.text
        assert "only@example.test" in refused.json()["detail"] and "no admin user" in refused.json()["detail"]
        roles = {u["email"]: u["role"] for u in admin.get("/v1/admin/users").json()["users"]}
    assert roles == {ADMIN_EMAIL: "admin", "only@example.test": "admin"}


def test_the_reviewers_n2_sequence_writes_whose_login_ended_while_their_body_arrived_are_refused(
    server: TeamServer,
) -> None:
    add_admin(server, "boss4@example.test")
    token = login(server, "boss4@example.test")
    url = httpx.URL(server.url)
    writes = [  # a route that reads no body (DELETE) is judged and done as its headers come
        ("POST", "/v1/admin/keys", {"name": "slow-key", "services": [], "role": "admin"}),
        ("POST", "/v1/admin/users", {"email": "slow@example.test", "password": "backdoor password 2", "role": "admin"}),
        ("PATCH", f"/v1/admin/users/{ADMIN_EMAIL}", {"password": "taken over password 1"}),
        ("PUT", "/v1/admin/services/echo/secret", {"secret": "a new secret 0123456789"}),
        ("PUT", "/v1/admin/services/echo/oauth", {"token_url": "https://127.0.0.1:1/token"}),
    ]
    held = []
    for method, path, body in writes:
        raw = json.dumps(body).encode()
        held_socket = socket.create_connection((url.host, url.port or 80))
        head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(raw) + 1}\r\n\r\n")  # fmt: skip
        held_socket.sendall(head.encode() + b" ")  # the headers and one byte of the body
        held.append((held_socket, raw))
    time.sleep(1.0)  # the route checked the login as the headers came
    with server.admin() as admin:
        assert admin.patch("/v1/admin/users/boss4@example.test", json={"role": "member"}).status_code == 200
    answers = []
    for held_socket, raw in held:
        held_socket.settimeout(30)
        held_socket.sendall(raw)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = held_socket.recv(65536)
            if not chunk:
                break
            received += chunk
        held_socket.close()
        status = int(received.split(b" ", 2)[1])
        answers.append((status, json.loads(received.split(b"\r\n\r\n", 1)[1])["detail"]))
    for status, detail in answers:
        assert status == 401, answers
        assert "user/boss4@example.test can no longer make keys or other admin changes" in detail
        assert "log in again" in detail
    with server.admin() as admin:
        assert "slow@example.test" not in {u["email"] for u in admin.get("/v1/admin/users").json()["users"]}
        assert "slow-key" not in {k["name"] for k in admin.get("/v1/admin/keys").json()["keys"]}
    with client(server) as anyone:  # the first admin's password was not changed
        first = anyone.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "taken over password 1"})
        assert first.status_code == 401


def test_the_schema_migration_adds_who_made_each_user_to_an_existing_database(team: Bootstrap, team_dsn: str) -> None:
    with psycopg.connect(team_dsn, autocommit=True) as conn:  # the owner's login, as `clavis-mcp team migrate`
        conn.execute("ALTER TABLE users DROP COLUMN created_by, DROP COLUMN created_epoch")
        create_schema(conn)
        columns = {row[0] for row in conn.execute("SELECT column_name FROM information_schema.columns"
                                                  " WHERE table_name = 'users'")}  # fmt: skip
    assert {"created_by", "created_epoch"} <= columns


def test_the_cli_names_the_admins_a_sign_out_demoted(server: TeamServer) -> None:
    add_admin(server, "boss@example.test")
    with client(server, login(server, "boss@example.test")) as boss:
        made = boss.post("/v1/admin/users", json={"email": "side@example.test", "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text
    env = {"CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": server.admin_key}
    result = CliRunner().invoke(main, ["team", "user", "sign-out", "boss@example.test"], env=env)
    assert result.exit_code == 0, result.output
    assert "demoted to member the admins their logins made: side@example.test" in result.stdout
