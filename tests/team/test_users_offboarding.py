"""Offboarding in team mode: removing a user, changing their role or password, signing them out
(by an admin or by themselves) ends every login token of theirs at its next use, on every replica;
the last admin user is kept; the admin verbs do it from the command line."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import trustme
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.team import identity
from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import ReplicaConfig
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import TOKEN_TTL
from clavis_mcp.team.replica import Replica
from clavis_mcp.team.schema import create_schema
from clavis_mcp.vault.errors import ApiRefused, TeamError

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, audit_rows, new_key, start_server, stop_server

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
NEW_PASSWORD = "another long enough password"


def add_user(server: TeamServer, email: str, role: str = "member", password: str = PASSWORD) -> None:
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": email, "password": password, "role": role})
        assert made.status_code == 201, made.text


def login(server: TeamServer, email: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/login", json={"email": email, "password": password}, timeout=30, trust_env=False
    )


def token_of(server: TeamServer, email: str, password: str = PASSWORD) -> str:
    answer = login(server, email, password)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def as_bearer(server: TeamServer, bearer: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=30, trust_env=False)


def get(server: TeamServer, bearer: str, path: str) -> httpx.Response:
    with as_bearer(server, bearer) as client:
        return client.get(path)


def refresh(server: TeamServer, bearer: str) -> httpx.Response:
    with as_bearer(server, bearer) as client:
        return client.post("/v1/auth/refresh")


def claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def audited(team: Bootstrap, action: str) -> list[dict[str, object]]:
    return [r for r in map(json.loads, audit_rows(team)) if r.get("action") == action]


def test_the_schema_adds_the_session_epoch_to_an_existing_users_table(team_dsn: str) -> None:
    with psycopg.connect(team_dsn, autocommit=True) as conn:
        conn.execute(  # the users table as the first release made it
            "CREATE TABLE users (email text PRIMARY KEY, password_hash text NOT NULL, role text NOT NULL"
            " CHECK (role IN ('admin', 'member')), created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO users (email, password_hash, role) VALUES ('old@example.test', 'x', 'admin')")
        create_schema(conn)
        create_schema(conn)  # and again: safe
        row = conn.execute("SELECT role, session_epoch FROM users").fetchone()
    assert row == ("admin", 0)


@pytest.mark.parametrize("column", ["session_epoch", "created_by", "created_epoch"])
def test_a_replica_refuses_to_start_on_an_older_schema_and_team_migrate_brings_it_up_to_date(
    team: Bootstrap, team_dsn: str, column: str
) -> None:
    """Without the column every login check (or the end of a login) would fail (500): the replica
    says what to run instead, and starts once it has been run with the owner's URL."""
    with psycopg.connect(team_dsn, autocommit=True) as owner:
        owner.execute(f"ALTER TABLE users DROP COLUMN {column}")
    with pytest.raises(TeamError, match=r"schema is older .*clavis-mcp team migrate"):
        Replica(ReplicaConfig.from_env(team.env))
    served = CliRunner().invoke(main, ["team", "serve", "--port", "0"], env=team.env)  # before any worker starts
    assert served.exit_code == 1 and "clavis-mcp team migrate" in served.output
    assert "Traceback" not in served.output
    replicas_role = CliRunner().invoke(main, ["team", "migrate"], env=team.env)
    assert replicas_role.exit_code == 1 and "owner's URL" in replicas_role.output
    migrated = CliRunner().invoke(main, ["team", "migrate"], env={"CLAVIS_TEAM_DATABASE_URL": team_dsn})
    assert migrated.exit_code == 0, migrated.output
    asyncio.run(Replica(ReplicaConfig.from_env(team.env)).stop())


def test_an_address_re_added_while_its_removal_commits_does_not_revive_the_old_tokens(
    team: Bootstrap, team_dsn: str
) -> None:
    """The review's race: the re-add read the epoch floor before the removal committed, and its
    row (epoch 0) matched the removed user's old tokens again. Now it waits for the removal."""
    with psycopg.connect(team_dsn, autocommit=True) as setup:
        identity.create_user(setup, "race@example.test", PASSWORD, "member")
        (old_epoch,) = setup.execute("SELECT session_epoch FROM users WHERE email = 'race@example.test'").fetchone()
        with psycopg.connect(team_dsn, autocommit=True) as remover, psycopg.connect(team_dsn, autocommit=True) as adder:
            readd = threading.Thread(target=identity.create_user, args=(adder, "race@example.test", PASSWORD, "member"))
            with remover.transaction():  # the removal, not yet committed, while the re-add starts
                identity.remove_user(remover, "race@example.test")
                readd.start()
                deadline = time.monotonic() + 20
                while not _waiting_on_a_lock(setup) and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert _waiting_on_a_lock(setup), "the re-add never reached the removal's locks"
            readd.join(20)
        (epoch,) = setup.execute("SELECT session_epoch FROM users WHERE email = 'race@example.test'").fetchone()
    assert epoch > old_epoch  # the old tokens carry old_epoch: refused


def _waiting_on_a_lock(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    (waiting,) = conn.execute(query).fetchone() or (0,)
    return bool(waiting)


def test_a_removed_users_login_is_refused_at_once_on_every_replica_and_they_cannot_log_in_or_refresh(
    tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA
) -> None:
    server = start_server(tmp_path, team, upstream_ca, workers=2)
    try:
        add_user(server, "bob@example.test")
        token = token_of(server, "bob@example.test")
        assert get(server, token, "/v1/services").status_code == 200
        with server.admin() as admin:
            removed = admin.delete("/v1/admin/users/Bob@Example.test")  # addresses are lower-case
            assert removed.status_code == 200 and removed.json()["email"] == "bob@example.test", removed.text
        answers = answers_from_every_worker(server, token)
        assert {a.status_code for a in answers.values()} == {401}, {w: a.text for w, a in answers.items()}
        assert all("log in again" in a.json()["detail"] for a in answers.values())
        gone = refresh(server, token)
        assert gone.status_code == 401 and "no longer exists" in gone.json()["detail"]
        assert login(server, "bob@example.test").status_code == 401
        # Added again under the same address: the old login stays dead, a new one works.
        add_user(server, "bob@example.test")
        assert get(server, token, "/v1/services").status_code == 401
        assert refresh(server, token).status_code == 401
        assert get(server, token_of(server, "bob@example.test"), "/v1/services").status_code == 200
        (removed,) = audited(team, "user-remove")
        assert removed["source"] == "key/admin" and removed["reason"] == "bob@example.test"
    finally:
        stop_server(server.process)


def test_removing_a_user_revokes_the_api_keys_they_made_and_keep_keys_keeps_them_listed(
    server: TeamServer, team: Bootstrap
) -> None:
    """A departed person may hold a copy of every key they made: offboarding revokes those too."""
    shared = new_key(server, "shared", [])  # made by the admin key: nobody's
    for email in ("dora@example.test", "eve@example.test"):
        add_user(server, email, "admin")
    made: dict[str, str] = {}
    for email, names in (
        ("dora@example.test", ("dora-ci", "dora-laptop", "dora-old")),
        ("eve@example.test", ("eve-ci",)),
    ):
        with as_bearer(server, token_of(server, email)) as person:
            for name in names:
                answer = person.post("/v1/admin/keys", json={"name": name, "services": []})
                assert answer.status_code == 201, answer.text
                made[name] = answer.json()["key"]
    with server.admin() as admin:
        assert admin.delete("/v1/admin/keys/dora-old").status_code in (200, 204)  # already revoked: not listed
        bad = admin.delete("/v1/admin/users/dora@example.test", params={"keep_keys": "maybe"})
        assert bad.status_code == 400 and "keep_keys" in bad.json()["detail"]
        removed = admin.delete("/v1/admin/users/Dora@example.test")
        assert removed.status_code == 200, removed.text
        assert removed.json() == {
            "email": "dora@example.test",
            "revoked_keys": ["dora-ci", "dora-laptop"],
            "kept_keys": [],
        }
        kept = admin.delete("/v1/admin/users/eve@example.test", params={"keep_keys": "true"})
        assert kept.json() == {"email": "eve@example.test", "revoked_keys": [], "kept_keys": ["eve-ci"]}
    assert get(server, made["dora-ci"], "/v1/services").status_code == 401
    assert get(server, made["dora-laptop"], "/v1/services").status_code == 401
    assert get(server, made["eve-ci"], "/v1/services").status_code == 200
    assert get(server, shared, "/v1/services").status_code == 200
    revoked = [r["reason"] for r in audited(team, "key-revoke")]
    assert "dora-ci (made by dora@example.test)" in revoked and "dora-laptop (made by dora@example.test)" in revoked
    assert [r["reason"] for r in audited(team, "user-remove")] == [
        "dora@example.test",
        "eve@example.test; kept the keys they made: eve-ci",
    ]


def test_keys_made_with_a_key_the_user_made_are_revoked_with_the_user(server: TeamServer, team: Bootstrap) -> None:
    """Review: a key made by the person's key (and so on) is theirs too; only the first was revoked."""
    add_user(server, "mallory@example.test", "admin")
    with as_bearer(server, token_of(server, "mallory@example.test")) as person:
        first = person.post("/v1/admin/keys", json={"name": "m-first", "services": [], "role": "admin"})
    with as_bearer(server, first.json()["key"]) as via_key:
        second = via_key.post("/v1/admin/keys", json={"name": "m-second", "services": [], "role": "admin"})
    with as_bearer(server, second.json()["key"]) as via_second:
        third = via_second.post("/v1/admin/keys", json={"name": "m-third", "services": []})
    with server.admin() as admin:
        removed = admin.delete("/v1/admin/users/mallory@example.test")
    assert removed.json()["revoked_keys"] == ["m-first", "m-second", "m-third"]
    for made in (first, second, third):
        assert get(server, made.json()["key"], "/v1/services").status_code == 401


def test_no_key_made_while_the_removal_commits_outlives_it(server: TeamServer, team: Bootstrap) -> None:
    """Review: a key whose request was authenticated just before the removal was inserted after its
    revocation ran. Keys are now made under the removal's lock, by a maker that must still exist."""
    add_user(server, "racer@example.test", "admin")
    token = token_of(server, "racer@example.test")
    made: list[str] = []
    stop = threading.Event()

    def make_keys(worker: int) -> None:
        with as_bearer(server, token) as person:
            for n in itertools.count():
                answer = person.post("/v1/admin/keys", json={"name": f"race-{worker}-{n}", "services": []})
                if answer.status_code != 201 or stop.is_set():
                    return
                made.append(answer.json()["key"])

    makers = [threading.Thread(target=make_keys, args=(worker,)) for worker in range(4)]
    for maker in makers:
        maker.start()
    time.sleep(0.5)
    with server.admin() as admin:
        assert admin.delete("/v1/admin/users/racer@example.test").status_code == 200
    stop.set()
    for maker in makers:
        maker.join()
    assert made and all(get(server, key, "/v1/services").status_code == 401 for key in made)


def answers_from_every_worker(server: TeamServer, bearer: str) -> dict[str, httpx.Response]:
    """``GET /v1/services`` with ``bearer`` as each worker answers it (one keep-alive connection per try)."""
    answers: dict[str, httpx.Response] = {}
    deadline = time.monotonic() + 60
    while len(answers) < 2 and time.monotonic() < deadline:
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
            worker = client.get("/healthz").json()["replica"]
            answers[worker] = client.get("/v1/services", headers={"Authorization": f"Bearer {bearer}"})
    assert len(answers) == 2, "the second worker never answered"
    return answers


def test_a_demoted_admins_login_no_longer_passes_admin_routes(server: TeamServer, team: Bootstrap) -> None:
    add_user(server, "ann@example.test", "admin")
    token = token_of(server, "ann@example.test")
    assert get(server, token, "/v1/admin/users").status_code == 200
    with server.admin() as admin:
        demoted = admin.patch("/v1/admin/users/ann@example.test", json={"role": "member"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "member", demoted.text
    assert get(server, token, "/v1/admin/users").status_code == 401
    assert refresh(server, token).status_code == 401
    fresh = token_of(server, "ann@example.test")
    assert get(server, fresh, "/v1/admin/users").status_code == 403
    assert get(server, fresh, "/v1/services").status_code == 200
    (changed,) = audited(team, "user-role")
    assert changed["reason"] == "ann@example.test as member" and changed["source"] == "key/admin"


def test_the_role_is_read_from_the_users_row_not_from_the_token(server: TeamServer, team: Bootstrap) -> None:
    add_user(server, "ann@example.test", "admin")
    token = token_of(server, "ann@example.test")
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE users SET role = 'member' WHERE email = 'ann@example.test'")  # epoch unchanged
    assert claims(token)["role"] == "admin"
    assert get(server, token, "/v1/admin/users").status_code == 403
    refreshed = refresh(server, token)
    assert refreshed.status_code == 200 and claims(refreshed.json()["access_token"])["role"] == "member"


def test_sign_out_logout_and_a_new_password_end_existing_logins_but_a_fresh_login_works(
    server: TeamServer, team: Bootstrap
) -> None:
    add_user(server, "carol@example.test")
    first = token_of(server, "carol@example.test")
    with server.admin() as admin:
        signed_out = admin.patch("/v1/admin/users/carol@example.test", json={"sign_out": True})
    assert signed_out.status_code == 200 and signed_out.json() == {
        "email": "carol@example.test", "role": "member", "signed_out": True
    }  # fmt: skip
    ended = get(server, first, "/v1/services")
    assert ended.status_code == 401 and "signed out" in ended.json()["detail"]
    assert refresh(server, first).status_code == 401
    second = token_of(server, "carol@example.test")  # the password still works
    with as_bearer(server, second) as carol:
        assert carol.post("/v1/auth/logout").status_code == 204
        assert carol.get("/v1/services").status_code == 401
    third = token_of(server, "carol@example.test")
    with server.admin() as admin:
        short = admin.patch("/v1/admin/users/carol@example.test", json={"password": "short"})
        assert short.status_code == 400 and "at least 12" in short.json()["detail"]
        assert get(server, third, "/v1/services").status_code == 200  # a refused change ends nothing
        changed = admin.patch("/v1/admin/users/carol@example.test", json={"password": NEW_PASSWORD})
        assert changed.status_code == 200, changed.text
    assert get(server, third, "/v1/services").status_code == 401
    assert login(server, "carol@example.test").status_code == 401
    assert get(server, token_of(server, "carol@example.test", NEW_PASSWORD), "/v1/services").status_code == 200
    assert [len(audited(team, a)) for a in ("user-sign-out", "logout", "user-password")] == [1, 1, 1]
    assert not any(NEW_PASSWORD in row or PASSWORD in row for row in audit_rows(team))
    assert NEW_PASSWORD not in server.log_text()


def test_an_api_key_cannot_log_out(server: TeamServer) -> None:
    with server.admin() as admin:
        answer = admin.post("/v1/auth/logout")
    assert answer.status_code == 400 and "revoke" in answer.json()["detail"]


def test_the_last_admin_user_cannot_be_removed_or_demoted(server: TeamServer) -> None:
    with server.admin() as admin:
        for answer in (
            admin.delete(f"/v1/admin/users/{ADMIN_EMAIL}"),
            admin.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"role": "member"}),
        ):
            assert answer.status_code == 409 and "last admin" in answer.json()["detail"], answer.text
        token = token_of(server, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert get(server, token, "/v1/admin/users").status_code == 200  # a refused change ends no login
        add_user(server, "second@example.test", "admin")
        assert admin.patch(f"/v1/admin/users/{ADMIN_EMAIL}", json={"role": "member"}).status_code == 200
        last = admin.delete("/v1/admin/users/second@example.test")
        assert last.status_code == 409 and "second@example.test" in last.json()["detail"]


def test_two_admins_demoted_at_once_by_two_replicas_leave_one_admin(team: Bootstrap) -> None:
    """The second replica's change waits for the first one's to commit, then sees the last admin."""
    url = team.env["CLAVIS_TEAM_DATABASE_URL"]
    outcome: list[str] = []

    def demote(email: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                identity.change_user(conn, email, role="member")
                outcome.append("done")
            except ApiRefused as exc:
                outcome.append(f"{exc.status} {exc.detail}")

    with psycopg.connect(url, autocommit=True) as first:
        first.execute("INSERT INTO users (email, password_hash, role) VALUES ('two@example.test', 'x', 'admin')")
        with first.transaction():  # the first replica's change, not yet committed
            identity.change_user(first, ADMIN_EMAIL, role="member")
            second = threading.Thread(target=demote, args=("two@example.test",))
            second.start()
            second.join(1.0)
            assert second.is_alive() and outcome == []  # it waits
        second.join(30)
    assert len(outcome) == 1 and outcome[0].startswith("409") and "last admin" in outcome[0]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone() == (1,)


def test_the_user_list_never_shows_a_hash_and_bad_requests_say_what_is_wrong(server: TeamServer) -> None:
    add_user(server, "Dora@Example.test")
    with server.admin() as admin:
        listed = admin.get("/v1/admin/users")
        assert listed.status_code == 200
        assert [set(u) for u in listed.json()["users"]] == [{"email", "role", "created_at"}] * 2
        assert {u["email"] for u in listed.json()["users"]} == {ADMIN_EMAIL, "dora@example.test"}
        assert "argon2" not in listed.text and "hash" not in listed.text
        for answer in (
            admin.delete("/v1/admin/users/nobody@example.test"),
            admin.patch("/v1/admin/users/nobody@example.test", json={"sign_out": True}),
        ):
            assert answer.status_code == 404 and "no user 'nobody@example.test'" in answer.json()["detail"]
        for body, expected in (
            ({}, "nothing to change"),
            ({"sign_out": False}, "nothing to change"),
            ({"sign_out": "yes"}, "true or false"),
            ({"role": "owner"}, "use admin or member"),
            ({"email": "x@example.test"}, "unknown fields email"),
        ):
            answer = admin.patch("/v1/admin/users/dora@example.test", json=body)
            assert answer.status_code == 400 and expected in answer.json()["detail"], (body, answer.text)


def test_a_member_cannot_list_remove_or_change_users(server: TeamServer) -> None:
    add_user(server, "eve@example.test")
    key = new_key(server, "member-key", [])
    for bearer in (token_of(server, "eve@example.test"), key):
        with as_bearer(server, bearer) as member:
            assert member.get("/v1/admin/users").status_code == 403
            assert member.delete(f"/v1/admin/users/{ADMIN_EMAIL}").status_code == 403
            assert member.patch("/v1/admin/users/eve@example.test", json={"role": "admin"}).status_code == 403
    with server.admin() as admin:
        roles = {u["email"]: u["role"] for u in admin.get("/v1/admin/users").json()["users"]}
    assert roles == {ADMIN_EMAIL: "admin", "eve@example.test": "member"}


@pytest.fixture
def legacy_token(team: Bootstrap, openbao: OpenBao) -> Iterator[str]:
    """An admin login token as the server signed it before session epochs: no ``epoch`` claim."""
    prefix = team.env["CLAVIS_TEAM_BAO_PREFIX"]
    bao = Bao(openbao.addr, openbao.root_token)
    now = int(time.time())
    body = {"iss": f"clavis-team:{prefix}", "sub": ADMIN_EMAIL, "role": "admin", "iat": now, "exp": now + TOKEN_TTL}
    version = max(bao.public_keys(f"{prefix}-transit", "jwt"))
    header = {"alg": "EdDSA", "typ": "JWT", "kid": f"jwt:v{version}"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    _, signature = bao.sign(f"{prefix}-transit", "jwt", signing_input.encode())
    yield f"{signing_input}.{b64(signature)}"
    bao.close()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_from_before_session_epochs_works_while_the_epoch_is_0(server: TeamServer, legacy_token: str) -> None:
    assert "epoch" not in claims(legacy_token)
    assert get(server, legacy_token, "/v1/admin/users").status_code == 200
    refreshed = refresh(server, legacy_token)
    assert refreshed.status_code == 200 and claims(refreshed.json()["access_token"])["epoch"] == 0
    with as_bearer(server, legacy_token) as admin:
        assert admin.post("/v1/auth/logout").status_code == 204
        assert admin.get("/v1/admin/users").status_code == 401


def team_cli(server: TeamServer, *args: str, input: str | None = None, key: str | None = None) -> Result:
    env = {"CLAVIS_API_URL": server.url, "CLAVIS_API_KEY": key or server.admin_key}
    return CliRunner().invoke(main, ["team", "user", *args], input=input, env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def test_the_cli_user_verbs_offboard_a_person_end_to_end(
    server: TeamServer, team: Bootstrap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "home"))
    ok(team_cli(server, "add", "frank@example.test", "--password-stdin", input=PASSWORD))
    listed = json.loads(ok(team_cli(server, "list", "--json")).stdout)
    assert {"email": "frank@example.test", "role": "member"} in [{k: u[k] for k in ("email", "role")} for u in listed]
    text = ok(team_cli(server, "list")).stdout
    assert "frank@example.test" in text and "member" in text and "argon2" not in text

    assert "is now admin" in ok(team_cli(server, "role", "Frank@example.test", "admin")).stdout
    token = token_of(server, "frank@example.test")
    assert get(server, token, "/v1/admin/users").status_code == 200
    assert "signed frank@example.test out" in ok(team_cli(server, "sign-out", "frank@example.test")).stdout
    assert get(server, token, "/v1/admin/users").status_code == 401

    ok(team_cli(server, "password", "frank@example.test", "--password-stdin", input=NEW_PASSWORD))
    assert login(server, "frank@example.test").status_code == 401
    token = token_of(server, "frank@example.test", NEW_PASSWORD)
    with as_bearer(server, token) as frank:
        assert frank.post("/v1/admin/keys", json={"name": "frank-side", "services": []}).status_code == 201
    signed_out = ok(team_cli(server, "sign-out", "frank@example.test")).stdout  # a copy of his login made a key
    assert "revoked the API keys their logins made: frank-side" in signed_out
    token = token_of(server, "frank@example.test", NEW_PASSWORD)
    with as_bearer(server, token) as frank:
        assert frank.post("/v1/admin/keys", json={"name": "frank-ci", "services": []}).status_code == 201

    unconfirmed = team_cli(server, "remove", "frank@example.test")  # no terminal, no --yes
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.output
    assert "revoke the 1 API key(s) they made (frank-ci)" in unconfirmed.output  # named before anything is done
    removed = ok(team_cli(server, "remove", "frank@example.test", "--yes")).stdout
    assert "removed frank@example.test" in removed and "revoked the API keys they made: frank-ci" in removed
    assert get(server, token, "/v1/services").status_code == 401
    assert login(server, "frank@example.test", NEW_PASSWORD).status_code == 401

    again = team_cli(server, "remove", "frank@example.test", "--yes")
    assert again.exit_code == 1 and "not found (404" in again.stderr and again.stderr.count("\n") == 1
    last = team_cli(server, "role", ADMIN_EMAIL, "member")
    assert last.exit_code == 1 and "409" in last.stderr and "last admin" in last.stderr
    assert last.stderr.count("\n") == 1
    member = new_key(server, "member-key", [])
    refused = team_cli(server, "list", key=member)
    assert refused.exit_code == 1 and "not allowed" in refused.stderr and "403" in refused.stderr
    actions = [r.get("action") for r in map(json.loads, audit_rows(team))]
    assert {"user-add", "user-role", "user-sign-out", "user-password", "user-remove"} <= set(actions)
    assert not (tmp_path / "home").exists()
    for text in (server.log_text(), *audit_rows(team)):
        assert PASSWORD not in text and NEW_PASSWORD not in text


def test_a_login_is_still_checked_after_the_database_dropped_the_replicas_connection(
    server: TeamServer, team_dsn: str
) -> None:
    token = token_of(server, ADMIN_EMAIL, ADMIN_PASSWORD)
    with psycopg.connect(team_dsn, autocommit=True) as owner:
        owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert get(server, token, "/v1/admin/users").status_code == 200
