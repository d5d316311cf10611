"""A key's authority never outlives the login that made it (review finding M2): demoting, signing
out or setting a new password for a person revokes the API keys made with their authority, the
keys made with those, and so on; the key the bootstrap printed is the deployment's, not a login's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.team import identity
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.keys import FIRST_ADMIN_KEY, Principal
from clavis_mcp.vault.errors import ApiRefused
from demo.echo_upstream import EchoUpstream

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, add_echo, audit_rows

pytestmark = pytest.mark.e2e

PASSWORD = "boss password 1234"
NEW_PASSWORD = "new boss password 99"


def client(server: TeamServer, bearer: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30, trust_env=False)


def admin_user_with_keys(server: TeamServer, email: str = "boss@example.test") -> tuple[str, dict[str, str]]:
    """An admin user, their login, an admin key made with it and a key made with that key."""
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": email, "password": PASSWORD, "role": "admin"})
        assert made.status_code == 201, made.text
    with client(server) as anyone:
        token = str(anyone.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json()["access_token"])
    keys: dict[str, str] = {}
    for name, bearer in (("boss-side", token), ("boss-child", None)):
        with client(server, bearer or keys["boss-side"]) as maker:
            answer = maker.post("/v1/admin/keys", json={"name": name, "services": [], "role": "admin"})
            assert answer.status_code == 201, answer.text
            keys[name] = str(answer.json()["key"])
    return token, keys


def assert_refused_as_revoked(server: TeamServer, key: str) -> None:
    echo = {"method": "GET", "url": "https://127.0.0.1:1/demoted"}
    with client(server, key) as holder:
        for answer in (
            holder.get("/v1/admin/users"),
            holder.post("/v1/admin/users", json={"email": "boss2@example.test", "password": PASSWORD, "role": "admin"}),
            holder.post("/v1/call/echo", json=echo),
        ):
            detail = answer.json()["detail"]
            assert answer.status_code == 401, answer.text
            assert "revoked" in detail and "signed out" in detail and "ask an admin for a new key" in detail


def test_the_reviewers_sequence_a_demoted_admins_keys_stop_at_the_next_request(
    server: TeamServer, team: Bootstrap, upstream: EchoUpstream
) -> None:
    """t8: an admin login mints an admin key; demotion, a new password and a sign-out leave it working."""
    add_echo(server, upstream)
    _, keys = admin_user_with_keys(server)
    with client(server, keys["boss-side"]) as side:
        call = side.post("/v1/call/echo", json={"method": "GET", "url": f"https://127.0.0.1:{upstream.port}/before"})
        assert call.status_code == 200, call.text
    with server.admin() as admin:
        demoted = admin.patch("/v1/admin/users/boss@example.test", json={"role": "member", "password": NEW_PASSWORD})
        assert demoted.status_code == 200, demoted.text
        assert demoted.json()["revoked_keys"] == ["boss-child", "boss-side"]
        assert admin.patch("/v1/admin/users/boss@example.test", json={"sign_out": True}).json() == {
            "email": "boss@example.test",
            "role": "member",
            "signed_out": True,
        }  # nothing left to revoke: the answer keeps its old shape
        listed = {k["name"]: k["revoked"] for k in admin.get("/v1/admin/keys").json()["keys"]}
        assert listed["boss-side"] and listed["boss-child"] and not listed[FIRST_ADMIN_KEY]
        users = [u["email"] for u in admin.get("/v1/admin/users").json()["users"]]
    for key in keys.values():
        assert_refused_as_revoked(server, key)
    assert "boss2@example.test" not in users
    revoked = [json.loads(r)["reason"] for r in audit_rows(team) if json.loads(r).get("action") == "key-revoke"]
    assert sorted(revoked) == [
        "boss-child (made by boss@example.test, whose logins ended)",
        "boss-side (made by boss@example.test, whose logins ended)",
    ]


@pytest.mark.parametrize(
    "end",
    [{"sign_out": True}, {"password": NEW_PASSWORD}, {"role": "admin"}, "logout"],
    ids=["admin-signs-them-out", "new-password", "same-role-again", "own-logout"],
)
def test_whatever_ends_an_admins_logins_revokes_the_keys_made_with_their_authority(
    server: TeamServer, team: Bootstrap, end: dict[str, object] | str
) -> None:
    token, keys = admin_user_with_keys(server)
    if end == "logout":
        with client(server, token) as boss:
            assert boss.post("/v1/auth/logout").status_code == 204
    else:
        with server.admin() as admin:
            answer = admin.patch("/v1/admin/users/boss@example.test", json=end)
            assert answer.status_code == 200 and answer.json()["revoked_keys"] == ["boss-child", "boss-side"]
    for key in keys.values():
        assert_refused_as_revoked(server, key)
    with server.admin() as admin:  # the deployment's own key is untouched
        assert admin.get("/v1/admin/users").status_code == 200


def test_the_first_admin_key_outlives_the_first_admins_sign_out_but_keys_from_their_login_do_not(
    server: TeamServer, team: Bootstrap
) -> None:
    with client(server) as anyone:
        login = anyone.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    with client(server, login.json()["access_token"]) as first_admin:
        from_login = first_admin.post("/v1/admin/keys", json={"name": "laptop", "services": []})
        assert from_login.status_code == 201
    with server.admin() as admin:
        from_key = admin.post("/v1/admin/keys", json={"name": "ci", "services": []}).json()["key"]
        signed_out = admin.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"sign_out": True})
        assert signed_out.status_code == 200 and signed_out.json()["revoked_keys"] == ["laptop"]
        assert admin.get("/v1/admin/users").status_code == 200
    with client(server, from_key) as ci:
        assert ci.get("/v1/services").status_code == 200
    with client(server, from_login.json()["key"]) as laptop:
        assert laptop.get("/v1/services").status_code == 401


def test_a_key_cannot_be_made_with_a_login_that_ended_after_it_was_checked(team: Bootstrap) -> None:
    """The race: the login passed the check, then an admin signed its user out before the key was made."""
    url = team.env["CLAVIS_TEAM_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        identity.create_user(conn, "late@example.test", PASSWORD, "admin")
        checked = Principal("user/late@example.test", "admin", ("*",), epoch=0)
        with conn.transaction():
            identity.hold_admin(conn, checked)  # still current: no refusal
        identity.change_user(conn, "late@example.test")
        with pytest.raises(ApiRefused) as refused, conn.transaction():
            identity.hold_admin(conn, checked)
    assert refused.value.status == 401 and "log in again" in refused.value.detail


def test_key_create_with_a_login_says_the_key_ends_with_that_login_and_with_an_api_key_does_not(
    server: TeamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "home"))
    token, keys = admin_user_with_keys(server)
    said = {}
    for maker, bearer in (("login", token), ("key", keys["boss-side"])):
        env = {"CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": bearer}
        result = CliRunner().invoke(main, ["team", "key", "create", f"ci-{maker}", "--services", "echo"], env=env)
        assert result.exit_code == 0, result.output
        said[maker] = result.stderr
    assert "made with the login of boss@example.test: it is revoked when that person's logins end" in said["login"]
    assert "made with the login" not in said["key"]
