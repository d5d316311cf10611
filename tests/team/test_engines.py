"""The engines start, answer, and leave nothing behind; the bootstrap sets up both of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap, bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao, start_openbao, start_postgres
from clavis_mcp.vault.errors import BaoRefused, TeamError

pytestmark = pytest.mark.e2e


def test_openbao_dev_server_answers_and_is_gone_after_stop(tmp_path: Path) -> None:
    with start_openbao(tmp_path) as bao:
        health = httpx.get(f"{bao.addr}/v1/sys/health", timeout=5).json()
        assert health["initialized"] and not health["sealed"]
        workdir = bao.workdir
        assert bao.root_token not in repr(bao)
    assert bao.process.poll() is not None
    assert not workdir.exists()


def test_postgres_cluster_answers_on_loopback_and_is_removed_after_stop(tmp_path: Path) -> None:
    with start_postgres(tmp_path) as pg:
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        root = pg.root
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.dsn, connect_timeout=2)


def test_bootstrap_confines_the_replica_role_to_its_prefix(team: Bootstrap, openbao: OpenBao) -> None:
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    replica = Bao(openbao.addr, approle=(names.approle, team.env["CLAVIS_TEAM_BAO_ROLE_ID"],
                                          team.env["CLAVIS_TEAM_BAO_SECRET_ID"]))  # fmt: skip
    try:
        version = replica.kv_write(names.kv, names.secret_path("x"), {"credential": "value-for-the-test"})
        assert replica.kv_read(names.kv, names.secret_path("x")) == ({"credential": "value-for-the-test"}, version)
        with pytest.raises(BaoRefused) as refused:
            replica.request("GET", "sys/mounts")
        assert refused.value.status == 403
        with pytest.raises(BaoRefused):
            replica.request("POST", f"{names.transit}/keys/jwt/rotate", {})
    finally:
        replica.close()
    assert team.admin_key.startswith("clv_") and team.admin_key not in repr(team)
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"]) as conn:
        stored = conn.execute("SELECT key_hash, role FROM api_keys").fetchall()
    assert len(stored) == 1 and stored[0][1] == "admin" and team.admin_key.encode() not in bytes(stored[0][0])


def test_bootstrap_refuses_a_prefix_outside_its_alphabet(openbao: OpenBao, team_dsn: str) -> None:
    with pytest.raises(TeamError, match="invalid prefix"):
        bootstrap(openbao.addr, openbao.root_token, team_dsn, admin_email="a@b.c", admin_password="x" * 12,
                  prefix="../sys")  # fmt: skip
