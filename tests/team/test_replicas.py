"""Three uvicorn workers on one PostgreSQL and one OpenBao: concurrent calls, a killed worker,
a revocation every worker sees at once, a budget shared by all, audit chains verified together."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trustme
from clavis import AuthenticationError, ClavisClient, RateLimitError

from clavis_mcp.team.bootstrap import Bootstrap
from clavis_mcp.team.mirror import PREFIX, SHM
from demo.echo_upstream import EchoUpstream
from tests.conftest import SECRET

from .conftest import TeamServer, add_echo, assert_nothing_leaked, new_key, start_server, stop_server, wait_for_replicas

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
WORKERS = 3


@pytest.fixture
def replicas(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    srv = start_server(tmp_path, team, upstream_ca, workers=WORKERS)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


def wait_for_workers(server: TeamServer, count: int, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.workers()
        if len(pids) >= count:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"{count} workers were not running after {timeout} s: {server.workers()}")


async def test_concurrent_calls_across_workers_and_a_killed_worker(
    replicas: TeamServer, upstream: EchoUpstream
) -> None:
    add_echo(replicas, upstream)
    client = ClavisClient(new_key(replicas, "agent", ["echo"]), base_url=replicas.url)
    first = await asyncio.gather(*(client.proxy("echo", "GET", f"/a/{i}") for i in range(30)))
    assert all(a.status_code == 200 for a in first)
    victim = wait_for_workers(replicas, WORKERS)[0]
    os.kill(victim, signal.SIGKILL)
    after = await asyncio.gather(*(client.proxy("echo", "GET", f"/b/{i}") for i in range(30)))
    assert all(a.status_code == 200 for a in after)
    assert victim not in wait_for_workers(replicas, WORKERS)  # the supervisor replaced it
    wait_for_replicas(replicas, WORKERS, time.monotonic() + 60)
    assert not list(Path(SHM if SHM.is_dir() else tempfile.gettempdir()).glob(f"{PREFIX}{victim}-*"))
    with replicas.admin() as admin:
        report = admin.get("/v1/audit/verify").json()
    assert report["ok"] is True, report["problems"]
    assert report["records"] >= 60 and report["chains"] >= 1  # how connections spread is the kernel's choice


async def test_a_revoked_key_is_refused_by_every_worker_at_once(replicas: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(replicas, upstream)
    key = new_key(replicas, "doomed", ["echo"])
    client = ClavisClient(key, base_url=replicas.url)
    assert all(c["valid"] for c in await asyncio.gather(*(client.check_credentials("echo") for _ in range(12))))
    with replicas.admin() as admin:
        assert admin.delete("/v1/admin/keys/doomed").status_code == 204
    outcomes = await asyncio.gather(*(client.check_credentials("echo") for _ in range(30)), return_exceptions=True)
    assert all(isinstance(o, AuthenticationError) for o in outcomes)


async def test_a_budget_holds_across_workers(replicas: TeamServer, upstream: EchoUpstream) -> None:
    add_echo(replicas, upstream, budget={"max_requests": 5, "period_seconds": 3600})
    client = ClavisClient(new_key(replicas, "agent", ["echo"]), base_url=replicas.url)
    outcomes = await asyncio.gather(
        *(client.proxy("echo", "GET", f"/c/{i}") for i in range(12)), return_exceptions=True
    )
    assert sum(1 for o in outcomes if isinstance(o, RateLimitError)) == 7
    assert len(upstream.received) == 5


async def test_a_service_added_through_one_worker_is_served_by_all(
    replicas: TeamServer, upstream: EchoUpstream
) -> None:
    key = new_key(replicas, "agent", ["echo"])
    add_echo(replicas, upstream)
    client = ClavisClient(key, base_url=replicas.url)
    answers = await asyncio.gather(*(client.proxy("echo", "GET", "/d") for _ in range(15)))
    assert all(a.status_code == 200 and SECRET not in a.model_dump_json() for a in answers)
    with replicas.admin() as admin:
        assert (
            admin.put("/v1/admin/services/echo/secret", json={"secret": "rotated-secret-0123456789"}).status_code == 200
        )
    await asyncio.gather(*(client.proxy("echo", "GET", "/e") for _ in range(15)))
    sent = [dict((k.lower(), v) for k, v in r.headers)["authorization"] for r in upstream.received[-15:]]
    assert sent == ["Bearer rotated-secret-0123456789"] * 15


async def test_a_replica_reconnects_after_the_database_dropped_its_connection(
    server: TeamServer, upstream: EchoUpstream, team_dsn: str
) -> None:
    add_echo(server, upstream)
    client = ClavisClient(new_key(server, "agent", ["echo"]), base_url=server.url)
    assert (await client.proxy("echo", "GET", "/before")).status_code == 200
    with psycopg.connect(team_dsn, autocommit=True) as owner:
        dropped = owner.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert dropped is not None and dropped[0] >= 1
    assert (await client.proxy("echo", "GET", "/after")).status_code == 200
