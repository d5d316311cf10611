"""A service name removed and added again is a new service (re-review N1, N2): a replica never
injects one lifetime's secret under another lifetime's definition, whether it missed the remove
and re-add entirely or the change fell between its reads of the rows and of the credentials. And
a writer waiting for a service's name lock does not stall the worker (N4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trustme

from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.config import ReplicaConfig
from clavis_mcp.team.replica import Replica
from clavis_mcp.team.storage import TeamStore, service_lock_key, service_to_json
from clavis_mcp.vault import Secret
from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import make_service

from .conftest import TeamServer, add_echo, assert_nothing_leaked, new_key, start_server, stop_server

pytestmark = pytest.mark.e2e

FIRST, SECOND = "first-lifetime-secret-abcdefgh", "second-lifetime-secret-abcdefgh"


@pytest.fixture
def second(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    """An independent replica (its own process) on the same PostgreSQL and OpenBao."""
    srv = start_server(tmp_path, team, upstream_ca)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


def replica(team: Bootstrap) -> Replica:
    return Replica(ReplicaConfig.from_env(team.env))


@pytest.fixture
def replicas(
    team: Bootstrap, upstream_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Replica, Replica]]:
    """Two in-process replicas: one whose mirror is read, one that writes meanwhile."""
    monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem")))
    pair = (replica(team), replica(team))
    yield pair
    for one in pair:
        one.mirror.close()
        one.bao.close()
        one.conn.close()


def sent(upstream: EchoUpstream, path: str) -> str:
    request = [r for r in upstream.received if r.path == path][-1]
    return dict((k.lower(), v) for k, v in request.headers)["authorization"]


def test_a_replica_that_missed_a_remove_and_readd_never_sends_the_removed_secret(
    server: TeamServer, second: TeamServer, upstream: EchoUpstream
) -> None:
    """The reviewer's n9: the same definition (created_at included) posted again with a new secret."""
    definition = service_to_json(make_service("st", f"localhost:{upstream.port}", local=True))
    url = f"https://localhost:{upstream.port}"
    with server.admin() as one, second.admin() as two:
        assert one.post("/v1/admin/services", json={"definition": definition, "secret": FIRST}).status_code == 201
        assert two.post("/v1/call/st", json={"method": "GET", "url": f"{url}/before"}).status_code == 200
        assert sent(upstream, "/before") == f"Bearer {FIRST}"
        assert one.delete("/v1/admin/services/st").status_code == 204
        assert one.post("/v1/admin/services", json={"definition": definition, "secret": SECOND}).status_code == 201
        for i in range(3):
            answer = two.post("/v1/call/st", json={"method": "GET", "url": f"{url}/after{i}"})
            assert answer.status_code == 200, answer.text
            assert sent(upstream, f"/after{i}") == f"Bearer {SECOND}"


@pytest.mark.parametrize("read_between", [False, True], ids=["readd-then-read", "remove-read-then-readd"])
def test_a_readd_between_the_mirrors_row_and_credential_reads_loads_the_new_service_whole(
    replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch, read_between: bool
) -> None:
    """The reviewer's n8b made deterministic: the stale replica has read the rows (old hosts) when
    the other one removes the service and adds it again (new hosts, new secret, KV version 1
    again), and reads the credential after the re-add (it used to pair the new secret with the old
    hosts) or between the remove and the re-add (it used to answer 503 "missing" until the next
    change)."""
    stale, writer = replicas
    old, new = make_service("zz", "old-owner.example.test"), make_service("zz", "new-owner.example.test")
    stale.mirror.sync()
    writer.store.add(old, Secret(FIRST))
    real = TeamStore.secret
    changed = threading.Event()

    def readd_around_the_read(store: TeamStore, name: str, version: int) -> Secret | None:
        if name != "zz" or changed.is_set():
            return real(store, name, version)
        changed.set()
        writer.store.remove("zz")
        found = real(store, name, version) if read_between else None
        writer.store.add(new, Secret(SECOND))
        return found if read_between else real(store, name, version)

    monkeypatch.setattr(stale.store, "secret", readd_around_the_read.__get__(stale.store))
    stale.mirror.sync()
    assert changed.is_set()
    loaded = stale.mirror.vault.get_service("zz")
    assert (loaded.hosts, stale.mirror.vault.secret("zz").reveal()) == (new.hosts, SECOND)
    assert "zz" not in stale.mirror.unavailable


def test_a_rotate_waiting_on_a_held_name_lock_answers_503_while_the_worker_keeps_serving(
    server: TeamServer, upstream: EchoUpstream, team: Bootstrap
) -> None:
    """Another session (another replica's remove waiting on a slow OpenBao) holds echo's name lock
    for HOLD seconds. The bounds are generous for a noisy machine: the point is that neither the
    rotate nor a member's listing waits for the holder (they did: both took the whole HOLD)."""
    hold_seconds, bound = 8.0, 3.0
    add_echo(server, upstream)
    member = new_key(server, "member", ["echo"])
    answers: dict[str, tuple[int, str, float]] = {}

    def rotate() -> None:
        with server.admin() as admin:
            start = time.monotonic()
            answer = admin.put("/v1/admin/services/echo/secret", json={"secret": "rotated-secret-0123456789"})
            answers["rotate"] = (answer.status_code, answer.json().get("detail", ""), time.monotonic() - start)

    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"], autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (service_lock_key("echo"),))
        release = threading.Timer(hold_seconds, holder.execute, ("SELECT pg_advisory_unlock_all()",))
        release.start()
        try:
            writer = threading.Thread(target=rotate)
            writer.start()
            time.sleep(0.1)
            with server.admin() as client:
                start = time.monotonic()
                listing = client.get("/v1/services", headers={"Authorization": f"Bearer {member}"})
                listed_in = time.monotonic() - start
            writer.join()
        finally:
            release.cancel()
    assert listing.status_code == 200 and listed_in < bound, (listing.status_code, listed_in)
    status, detail, took = answers["rotate"]
    assert (status, detail) == (503, "another change to 'echo' is under way; try again")
    assert took < bound, took
