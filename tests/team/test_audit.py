"""The team audit log: append-only in PostgreSQL, one HMAC chain per replica process, signed
checkpoints; verify finds an edited row, a cut chain and a forked one."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from clavis import ClavisClient

from clavis_mcp.team import audit as team_audit
from clavis_mcp.team.audit import TeamAuditLog
from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET

from .conftest import TeamServer, add_echo, audit_rows, new_key

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def dsn(team: Bootstrap) -> str:
    return team.env["CLAVIS_TEAM_DATABASE_URL"]


async def some_traffic(server: TeamServer, upstream: EchoUpstream, calls: int = 3) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    for i in range(calls):
        await client.proxy("echo", "GET", f"/item/{i}?token=query-value-{i}")


def verify(server: TeamServer) -> dict[str, Any]:
    with server.admin() as admin:
        answer = admin.get("/v1/audit/verify")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def tamper(owner_dsn: str, *statements: str) -> None:
    """What the database owner can do: switch the trigger off, change rows, switch it on."""
    with psycopg.connect(owner_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)
        conn.execute("ALTER TABLE audit ENABLE TRIGGER USER")


CHANGES = ("UPDATE audit SET mac = 'x'", "DELETE FROM audit", "TRUNCATE audit", "DELETE FROM audit_checkpoints")


async def test_the_audit_tables_refuse_update_delete_and_truncate_even_to_their_owner(
    server: TeamServer, upstream: EchoUpstream, team_dsn: str
) -> None:
    await some_traffic(server, upstream, 1)
    verify(server)  # a checkpoint row too
    for statement in CHANGES:
        with psycopg.connect(team_dsn, autocommit=True) as conn, pytest.raises(psycopg.errors.RaiseException):
            conn.execute(statement)


async def test_the_replicas_role_may_only_append_and_cannot_switch_the_trigger_off(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap
) -> None:
    await some_traffic(server, upstream, 1)
    verify(server)
    for statement in (*CHANGES, "ALTER TABLE audit DISABLE TRIGGER USER", "DROP TRIGGER audit_append_only ON audit"):
        with psycopg.connect(dsn(team), autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


async def test_records_hold_no_secret_nor_query_value_and_the_chain_verifies(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap
) -> None:
    await some_traffic(server, upstream)
    rows = audit_rows(team)
    assert rows and not any(SECRET in r or "query-value" in r for r in rows)
    report = verify(server)
    assert report["ok"] is True and report["chains"] >= 1 and report["records"] == len(rows)
    with server.admin() as admin:
        found = admin.get("/v1/audit", params={"service": "echo", "decision": "injected", "agent": "key/agent"}).json()
    assert len(found["records"]) == 3 and all(r["path"].endswith("?token=") for r in found["records"])


async def test_an_edited_row_is_detected(server: TeamServer, upstream: EchoUpstream, team_dsn: str) -> None:
    await some_traffic(server, upstream)
    assert verify(server)["ok"]
    tamper(
        team_dsn,
        "UPDATE audit SET record = replace(record, '\"status\":200', '\"status\":201') "
        'WHERE record LIKE \'%"decision":"injected"%\'',
    )
    report = verify(server)
    assert not report["ok"] and any("edited or forged" in p for p in report["problems"])


async def test_a_cut_chain_end_is_detected_by_the_signed_checkpoint(
    server: TeamServer, upstream: EchoUpstream, team_dsn: str
) -> None:
    await some_traffic(server, upstream)
    assert verify(server)["ok"]  # signs a checkpoint over the current heads
    tamper(team_dsn, "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)")
    report = verify(server)
    assert not report["ok"] and any("cut below record" in p for p in report["problems"])


async def test_a_forked_chain_is_detected(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap, team_dsn: str
) -> None:
    await some_traffic(server, upstream)
    assert verify(server)["ok"]
    with psycopg.connect(dsn(team)) as conn:
        chain, seq, text = conn.execute("SELECT chain, seq, record FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    other = json.dumps({**json.loads(text), "path": "/somewhere/else"}, sort_keys=True, separators=(",", ":"))
    tamper(team_dsn, f"DELETE FROM audit WHERE chain = '{chain}' AND seq = {seq}",
           f"INSERT INTO audit (id, chain, seq, time, record, mac) VALUES ('{json.loads(text)['id']}', '{chain}', "
           f"{seq}, now(), '{other}', '{'0' * 64}')")  # fmt: skip
    report = verify(server)
    assert not report["ok"] and any("forked" in p for p in report["problems"])


def test_two_replica_chains_interleave_and_verify_together(team: Bootstrap, openbao: OpenBao, team_dsn: str) -> None:
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    approle = (names.approle, team.env["CLAVIS_TEAM_BAO_ROLE_ID"], team.env["CLAVIS_TEAM_BAO_SECRET_ID"])
    bao = Bao(openbao.addr, approle=approle)
    with psycopg.connect(dsn(team), autocommit=True) as one, psycopg.connect(dsn(team), autocommit=True) as two:
        logs = [TeamAuditLog(one, bao, names), TeamAuditLog(two, bao, names)]
        for i in range(10):
            logs[i % 2].append(source="key/a", service="s", method="GET", decision="injected", status=200)
        assert logs[0].checkpoint()
        report = team_audit.verify(one, bao, names)
        assert report["ok"] and report["chains"] == 2 and report["records"] == 10
        chain = logs[1].chain
    tamper(team_dsn, f"DELETE FROM audit WHERE chain = '{chain}' AND seq = 5")
    with psycopg.connect(dsn(team)) as conn:
        problems = team_audit.verify(conn, bao, names)["problems"]
    bao.close()
    assert any(f"chain {chain}: cut below record 5" in p for p in problems)
