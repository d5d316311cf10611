"""Concurrent writers of one service name on two replicas (review R8, M1): the definition that
survives injects the secret registered with it, the loser's secret is written nowhere, and a
KV version no row points at is never injected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.storage import SECRET_FIELD, service_to_json
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, make_service

from .conftest import TeamServer, add_echo, assert_nothing_leaked, start_server, stop_server

pytestmark = pytest.mark.e2e
TRIES = 12


@pytest.fixture
def second(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    """An independent replica (its own process) on the same PostgreSQL and OpenBao."""
    srv = start_server(tmp_path, team, upstream_ca)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


@pytest.fixture
def root(openbao: OpenBao) -> Iterator[Bao]:
    bao = Bao(openbao.addr, openbao.root_token)
    yield bao
    bao.close()


def kv_secrets(root: Bao, team: Bootstrap, name: str) -> list[str | None]:
    """Every version's credential at the service's path (None: destroyed)."""
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    path = names.secret_path(name)
    found = [root.kv_read(names.kv, path, v) for v in range(1, root.kv_version(names.kv, path) + 1)]
    return [f[0][SECRET_FIELD] if f else None for f in found]


def injected(upstream: EchoUpstream, path: str) -> str:
    request = [r for r in upstream.received if r.path == path][-1]
    return dict((k.lower(), v) for k, v in request.headers)["authorization"]


def add(name: str, who: str, srv: TeamServer, host: str, secret: str, statuses: dict[str, int]) -> None:
    definition = service_to_json(make_service(name, host, local=True))
    with srv.admin() as admin:
        statuses[who] = admin.post("/v1/admin/services", json={"definition": definition, "secret": secret}).status_code


def test_concurrent_adds_of_one_name_inject_only_the_surviving_admins_secret(
    server: TeamServer, second: TeamServer, upstream: EchoUpstream, team: Bootstrap, root: Bao
) -> None:
    for i in range(TRIES):
        name = f"race{i}"
        admins = {
            "one": (server, f"localhost:{upstream.port}", f"secret-one-{i:03d}-abcdefghijkl"),
            "two": (second, f"127.0.0.1:{upstream.port}", f"secret-two-{i:03d}-abcdefghijkl"),
        }
        statuses: dict[str, int] = {}
        threads = [threading.Thread(target=add, args=(name, who, *admins[who], statuses)) for who in admins]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses.values()) == [201, 409], statuses
        winner = next(who for who, status in statuses.items() if status == 201)
        loser = "two" if winner == "one" else "one"
        for srv in (server, second):
            with srv.admin() as admin:
                (listed,) = [s for s in admin.get("/v1/services").json()["services"] if s["name"] == name]
                assert listed["hosts"] == [admins[winner][1]]
                answer = admin.post(
                    f"/v1/call/{name}", json={"method": "GET", "url": f"https://{admins[winner][1]}/{name}"}
                )
                assert answer.status_code == 200, answer.text
            assert injected(upstream, f"/{name}") == f"Bearer {admins[winner][2]}"
        assert kv_secrets(root, team, name) == [admins[winner][2]]  # the loser's secret is nowhere
        assert admins[loser][2] not in str(kv_secrets(root, team, name))
        with server.admin() as admin:
            assert admin.delete(f"/v1/admin/services/{name}").status_code == 204


def test_a_kv_version_no_row_points_at_is_never_injected(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap, root: Bao, tmp_path: Path, upstream_ca: trustme.CA
) -> None:
    add_echo(server, upstream)
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    root.kv_write(names.kv, names.secret_path("echo"), {SECRET_FIELD: "other-secret-0123456789abcdef"})
    fresh = start_server(tmp_path, team, upstream_ca)  # its mirror reads every service from scratch
    try:
        for srv in (server, fresh):
            with srv.admin() as admin:
                url = f"https://127.0.0.1:{upstream.port}/orphan"
                assert admin.post("/v1/call/echo", json={"method": "GET", "url": url}).status_code == 200
            assert injected(upstream, "/orphan") == f"Bearer {SECRET}"
    finally:
        stop_server(fresh.process)
    assert_nothing_leaked(fresh, team)
