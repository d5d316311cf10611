"""People and keys: Argon2id hashes, JWTs signed by OpenBao transit with a kid that survives a key
rotation, expired or forged tokens refused, scoped keys that expire and are revoked."""

from __future__ import annotations

import base64
import json
import time

import httpx
import psycopg
import pytest
from clavis import AuthenticationError, ClavisClient

from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.identity import Tokens

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, new_key

pytestmark = pytest.mark.e2e


def replica_bao(team: Bootstrap, openbao: OpenBao) -> tuple[Bao, Names]:
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    approle = (names.approle, team.env["CLAVIS_TEAM_BAO_ROLE_ID"], team.env["CLAVIS_TEAM_BAO_SECRET_ID"])
    return Bao(openbao.addr, approle=approle), names


def test_a_token_names_its_key_version_and_stays_valid_after_a_rotation(team: Bootstrap, openbao: OpenBao) -> None:
    bao, names = replica_bao(team, openbao)
    tokens = Tokens(bao, names.transit, "issuer")
    before = tokens.issue("a@example.test", "member")
    root = Bao(openbao.addr, openbao.root_token)
    root.request("POST", f"{names.transit}/keys/jwt/rotate", {})
    root.close()
    after = tokens.issue("a@example.test", "member")
    kid = json.loads(base64.urlsafe_b64decode(after.split(".")[0] + "=="))["kid"]
    assert kid == "jwt:v2"
    assert tokens.principal(before) is not None and tokens.principal(after) is not None
    bao.close()


def test_expired_forged_and_foreign_tokens_are_refused(team: Bootstrap, openbao: OpenBao) -> None:
    bao, names = replica_bao(team, openbao)
    tokens = Tokens(bao, names.transit, "issuer")
    token = tokens.issue("a@example.test", "member", now=time.time() - 86401)
    assert tokens.principal(token) is None  # expired
    good = tokens.issue("a@example.test", "member")
    head, body, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode()).rstrip(b"=").decode()
    assert tokens.principal(f"{head}.{forged}.{sig}") is None
    assert Tokens(bao, names.transit, "another-deployment").principal(good) is None
    none_alg = base64.urlsafe_b64encode(b'{"alg":"none","kid":"jwt:v1"}').rstrip(b"=").decode()
    assert tokens.principal(f"{none_alg}.{body}.") is None
    bao.close()


def test_passwords_are_stored_as_argon2id(team: Bootstrap) -> None:
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"]) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$") and ADMIN_PASSWORD not in stored


@pytest.mark.anyio
async def test_an_expired_key_is_refused(server: TeamServer, team: Bootstrap) -> None:
    key = new_key(server, "short", [], expires_in_seconds=3600)
    client = ClavisClient(key, base_url=server.url)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False) as member:
        assert member.get("/v1/services").status_code == 200
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short'")
    with pytest.raises(AuthenticationError):
        await client.check_credentials("anything")


def test_a_members_login_cannot_manage(server: TeamServer) -> None:
    with server.admin() as admin:
        made = admin.post("/v1/admin/users", json={"email": "m@example.test", "password": "member-password-123",
                                                    "role": "member"})  # fmt: skip
        assert made.status_code == 201 and "password" not in made.text
        listed = admin.get("/v1/admin/keys").json()["keys"]
    assert listed and all("key" not in k and "key_hash" not in k for k in listed)
    with httpx.Client(base_url=server.url, trust_env=False) as anon:
        token = anon.post("/v1/auth/login", json={"email": "m@example.test", "password": "member-password-123"})
        jwt = token.json()["access_token"]
        member = {"Authorization": f"Bearer {jwt}"}
        assert anon.get("/v1/services", headers=member).json() == {"services": []}  # keys carry service scopes
        assert anon.get("/v1/credentials/echo/check", headers=member).status_code == 403
        assert anon.post("/v1/admin/users", headers=member, json={}).status_code == 403
        assert anon.delete("/v1/admin/keys/admin", headers=member).status_code == 403
        assert (
            anon.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "wrong-password-xx"}).status_code == 401
        )
