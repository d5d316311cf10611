"""One service whose credential cannot be loaded is left out; every other keeps working (review R8, L1)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import trustme

from clavis_mcp.team.bao import Bao
from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import Names
from clavis_mcp.team.engines import OpenBao
from clavis_mcp.team.mirror import Mirror
from clavis_mcp.team.storage import SECRET_FIELD, TeamStore, service_to_json
from clavis_mcp.vault.refs.base import MARKER
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET, make_service

from .conftest import TeamServer, add_echo, assert_nothing_leaked, new_key, start_server, stop_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def root(openbao: OpenBao) -> Iterator[Bao]:
    bao = Bao(openbao.addr, openbao.root_token)
    yield bao
    bao.close()


def destroyed(root: Bao, names: Names) -> None:
    """What a remove racing an add of the same name left before the name lock: a row, no KV entry."""
    root.kv_destroy(names.kv, names.secret_path("ghost"))


def a_reference(root: Bao, names: Names) -> None:
    """A secret reference that reached OpenBao another way: the reference guard refuses it."""
    root.kv_destroy(names.kv, names.secret_path("ghost"))
    root.kv_write(names.kv, names.secret_path("ghost"), {SECRET_FIELD: f"{MARKER}op://vault/item/field"})


def use_echo(srv: TeamServer, key: str, upstream: EchoUpstream, path: str) -> None:
    """Key A (scoped to echo only) keeps working and never hears of ghost."""
    with srv.admin() as client:
        client.headers["Authorization"] = f"Bearer {key}"
        url = f"https://127.0.0.1:{upstream.port}{path}"
        call = client.post("/v1/call/echo", json={"method": "GET", "url": url})
        listed = client.get("/v1/services")
    assert call.status_code == 200, call.text
    assert listed.status_code == 200, listed.text
    assert [s["name"] for s in listed.json()["services"]] == ["echo"]
    assert "ghost" not in call.text + listed.text
    request = [r for r in upstream.received if r.path == path][-1]
    assert ("Authorization", f"Bearer {SECRET}") in request.headers


@pytest.mark.parametrize("spoil", [destroyed, a_reference], ids=["missing", "reference"])
def test_a_service_whose_credential_cannot_be_loaded_does_not_stop_the_others(
    server: TeamServer,
    upstream: EchoUpstream,
    team: Bootstrap,
    root: Bao,
    tmp_path: Path,
    upstream_ca: trustme.CA,
    spoil: Callable[[Bao, Names], None],
) -> None:
    add_echo(server, upstream)
    key = new_key(server, "a", ["echo"])
    definition = service_to_json(make_service("ghost", "ghost.example.test"))
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": "ghost-secret-0123456789"})
        assert answer.status_code == 201, answer.text
    spoil(root, Names(team.env["CLAVIS_TEAM_BAO_PREFIX"]))
    use_echo(server, key, upstream, "/first")
    add_echo(server, upstream, "echo2", "other-secret-0123456789abcdef")  # the counter moves: a new sync
    use_echo(server, key, upstream, "/second")

    fresh = start_server(tmp_path, team, upstream_ca)  # another replica, loading everything from scratch
    try:
        use_echo(fresh, key, upstream, "/fresh")

        with server.admin() as admin:  # what the log tells an admin to do brings ghost back everywhere
            answer = admin.put("/v1/admin/services/ghost/secret", json={"secret": "ghost-secret-0123456789"})
            assert answer.status_code == 200, answer.text
        for srv in (server, fresh):
            with srv.admin() as admin:
                assert "ghost" in [s["name"] for s in admin.get("/v1/services").json()["services"]]
    finally:
        stop_server(fresh.process)
    assert_nothing_leaked(fresh, team)


def test_an_unloadable_service_is_logged_once_by_name_and_listed_without_its_secret(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap, root: Bao, caplog: pytest.LogCaptureFixture
) -> None:
    """In process, on the real stores: the served replicas' log handlers belong to mitmproxy."""
    add_echo(server, upstream)
    definition = service_to_json(make_service("ghost", "ghost.example.test"))
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": "ghost-secret-0123456789"})
        assert answer.status_code == 201, answer.text
    names = Names(team.env["CLAVIS_TEAM_BAO_PREFIX"])
    destroyed(root, names)
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"], autocommit=True) as conn:
        mirror = Mirror(TeamStore(conn, root, names))
        try:
            with caplog.at_level(logging.WARNING, logger="clavis_mcp.team.mirror"):
                mirror.sync()
                add_echo(server, upstream, "echo2", "other-secret-0123456789abcdef")  # the counter moves
                mirror.sync()
            assert [s.name for s in mirror.vault.list_services()] == ["echo", "echo2"]
            assert list(mirror.unavailable) == ["ghost"]
            assert "PUT /v1/admin/services/ghost/secret" in mirror.unavailable["ghost"]
        finally:
            mirror.close()
    warnings = [r.getMessage() for r in caplog.records if "'ghost'" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "ghost-secret" not in caplog.text + mirror.unavailable["ghost"]


def test_a_call_to_an_unloadable_service_is_a_503_naming_it_only_for_keys_that_may_use_it(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap, root: Bao
) -> None:
    add_echo(server, upstream)
    outsider, insider = new_key(server, "a", ["echo"]), new_key(server, "g", ["ghost"])
    definition = service_to_json(make_service("ghost", "ghost.example.test"))
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": "ghost-secret-0123456789"})
        assert answer.status_code == 201, answer.text
    destroyed(root, Names(team.env["CLAVIS_TEAM_BAO_PREFIX"]))
    with server.admin() as client:
        url = "https://ghost.example.test/x"
        client.headers["Authorization"] = f"Bearer {insider}"
        mine = client.post("/v1/call/ghost", json={"method": "GET", "url": url})
        client.headers["Authorization"] = f"Bearer {outsider}"
        theirs = client.post("/v1/call/ghost", json={"method": "GET", "url": url})
    assert mine.status_code == 503
    assert "'ghost'" in mine.json()["detail"] and "PUT /v1/admin/services/ghost/secret" in mine.json()["detail"]
    assert theirs.status_code == 403 and "missing" not in theirs.text
