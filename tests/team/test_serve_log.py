"""`team serve` writes our own warnings to its stderr, once each, though mitmproxy's handler sits
on the root logger of every worker."""

from __future__ import annotations

import psycopg
import pytest

from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.storage import TeamStore
from clavis_mcp.vault import Secret
from tests.conftest import make_service

from .conftest import TeamServer

pytestmark = pytest.mark.e2e

WARNING = "clavis-mcp WARNING clavis_mcp.team.mirror: team service 'ghost' is not loaded"


def services(server: TeamServer) -> None:
    """A request: the replica syncs its mirror first when the team's change counter has moved."""
    with server.admin() as admin:
        assert admin.get("/v1/services").status_code == 200


def test_a_service_the_running_server_cannot_load_is_a_warning_on_its_stderr_once(
    server: TeamServer, team: Bootstrap, openbao: OpenBao
) -> None:
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    root = Bao(openbao.addr, openbao.root_token)
    try:
        with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"], autocommit=True) as conn:
            store = TeamStore(conn, root, names)
            store.add(make_service("ghost", "ghost.example.test"), Secret("ghost-secret-0123456789"))
            root.kv_destroy(names.kv, names.secret_path("ghost"))  # before the server has loaded it
            services(server)  # its proxy (and mitmproxy's root handler) has been up since it started
            store.add(make_service("other", "other.example.test"), Secret("other-secret-0123456789abcdef"))
            services(server)  # another sync: ghost is still out, and not logged again
    finally:
        root.close()
    log = server.log_text()
    assert log.count(WARNING) == 1, log[-3000:]
    assert "ghost-secret" not in log
