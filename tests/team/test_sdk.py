"""The unmodified `clavis` 0.2.4 SDK against a real team server, OpenBao, PostgreSQL and an HTTPS upstream."""

from __future__ import annotations

import json

import pytest
from clavis import AuthenticationError, ClavisClient, ClavisError, RateLimitError, TokenError

from clavis_mcp.team.bootstrap import Bootstrap
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET

from .conftest import ADMIN_EMAIL, ADMIN_PASSWORD, TeamServer, add_echo, audit_rows, new_key

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_call_injects_at_egress_and_the_answer_is_scrubbed(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap
) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    result = await client.call("echo", "GET", f"https://127.0.0.1:{upstream.port}/v1/things", params={"q": "1"},
                               headers={"Authorization": "Bearer agent-supplied"})  # fmt: skip
    assert result["status_code"] == 200
    assert upstream.received[-1].path == "/v1/things?q=1"
    sent = dict((k.lower(), v) for k, v in upstream.received[-1].headers)
    assert sent["authorization"] == f"Bearer {SECRET}"  # ours, set at egress; the agent's was stripped
    assert "[REDACTED:echo]" in result["body"]["headers"]["Authorization"]
    assert SECRET not in json.dumps(result)
    records = audit_rows(team)
    assert any('"decision":"injected"' in r and '"source":"key/agent"' in r for r in records)
    assert not any(SECRET in r for r in records)


async def test_proxy_answers_the_sdk_shape_with_the_quota_in_a_header(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    answer = await client.proxy("echo", "POST", "/v1/items", params={"a": "b"}, body={"x": 1})
    assert answer.status_code == 200 and isinstance(answer.body, dict)
    assert upstream.received[-1].method == "POST" and json.loads(upstream.received[-1].body) == {"x": 1}
    assert SECRET not in answer.model_dump_json()


async def test_a_url_off_the_services_hosts_is_a_400_before_any_traffic(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    with pytest.raises(ClavisError) as refused:
        await client.call("echo", "GET", "https://evil.example/steal")
    assert refused.value.status_code == 400 and "not a host of 'echo'" in str(refused.value)
    assert upstream.received == []


async def test_a_bad_key_is_401_and_the_sdk_raises_authentication_error(server: TeamServer) -> None:
    with pytest.raises(AuthenticationError):
        await ClavisClient("clv_not-a-key", base_url=server.url).check_credentials("echo")


async def test_a_member_key_cannot_use_a_service_outside_its_scope_nor_manage(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    add_echo(server, upstream, name="other", secret="other-secret-0123456789abcdef", path_prefixes=("/other",))
    key = new_key(server, "narrow", ["echo"])
    client = ClavisClient(key, base_url=server.url)
    with pytest.raises(ClavisError) as refused:
        await client.call("other", "GET", f"https://127.0.0.1:{upstream.port}/")
    assert refused.value.status_code == 403
    import httpx

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, trust_env=False) as member:
        assert member.post("/v1/admin/keys", json={"name": "x", "services": ["other"]}).status_code == 403
        assert member.get("/v1/audit").status_code == 403
        listed = member.get("/v1/services").json()["services"]
    assert [s["name"] for s in listed] == ["echo"] and SECRET not in json.dumps(listed)


async def test_unknown_service_is_404(server: TeamServer) -> None:
    client = ClavisClient(server.admin_key, base_url=server.url)
    with pytest.raises(ClavisError) as missing:
        await client.check_credentials("nope")
    assert missing.value.status_code == 404


async def test_get_token_under_the_default_policy_is_403_pointing_to_call(
    server: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    with pytest.raises(ClavisError) as refused:
        await client.get_token("echo")
    assert refused.value.status_code == 403 and "/v1/call/echo" in str(refused.value)


@pytest.mark.reveals_secret
async def test_get_token_under_a_full_policy_hands_it_out_and_audits_it(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap
) -> None:
    add_echo(server, upstream, reveal="full")
    token = await ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url).get_token("echo")
    assert token.access_token == SECRET and token.service_name == "echo"
    assert any('"action":"reveal"' in r and '"decision":"revealed"' in r for r in audit_rows(team))


async def test_check_and_verify_answer_the_sdk_shapes(server: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    checked = await client.check_credentials("echo")
    assert checked["valid"] is True and checked["status"] == "valid" and checked["service"] == "echo"
    assert set(checked) >= {"expires_in", "rate_limit_remaining", "last_used"}
    before = len(upstream.received)
    verified = await client.verify_credentials("echo")
    assert verified["valid"] is True and len(upstream.received) == before + 1
    assert set(verified) == {"valid", "verified_at", "expires_in", "rate_limit_remaining"}


async def test_login_gives_a_jwt_the_sdk_can_use(server: TeamServer, upstream: EchoUpstream) -> None:
    import httpx

    add_echo(server, upstream)
    with httpx.Client(base_url=server.url, trust_env=False) as anon:
        answer = anon.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 86400
    header = json.loads(__import__("base64").urlsafe_b64decode(answer["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"] == "jwt:v1"
    checked = await ClavisClient(answer["access_token"], base_url=server.url).check_credentials("echo")
    assert checked["valid"] is True


async def test_login_brute_force_is_rate_limited_with_an_integer_retry_after(server: TeamServer) -> None:
    import httpx

    with httpx.Client(base_url=server.url, trust_env=False) as anon:
        statuses = [
            anon.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": f"guess-{i}-xxxxxxxx"}).status_code
            for i in range(6)
        ]
        last = anon.post("/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    assert last.status_code == 429 and last.headers["Retry-After"].isdigit()
    assert last.json()["detail"]


async def test_every_error_is_json_detail_even_for_unknown_routes(server: TeamServer) -> None:
    import httpx

    with httpx.Client(base_url=server.url, trust_env=False) as anon:
        for answer in (anon.get("/v1/nowhere"), anon.get("/v1/services"), anon.post("/v1/call/x", content=b"[")):
            assert answer.headers["content-type"].startswith("application/json")
            assert isinstance(answer.json()["detail"], str)


__all__ = ["RateLimitError", "TokenError"]
