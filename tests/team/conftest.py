"""Team-mode fixtures: one real OpenBao dev server and one throwaway PostgreSQL cluster per session;
each test gets its own database and its own OpenBao prefix (mounts, AppRole, policy), and, when
it asks, a real `team serve` subprocess (1 or N uvicorn workers) on 127.0.0.1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trustme

from clavis_mcp.team.bootstrap import Bootstrap, bootstrap
from clavis_mcp.team.engines import OpenBao, Postgres, start_openbao, start_postgres
from clavis_mcp.team.storage import service_to_json
from clavis_mcp.vault import Secret
from clavis_mcp.vault.redaction.redactor import Redactor
from clavis_mcp.vault.redaction.views import redact_decoded
from demo.echo_upstream import EchoUpstream, write_ca
from tests.conftest import SECRET, make_service

ADMIN_EMAIL = "admin@example.test"
ADMIN_PASSWORD = "correct horse battery staple"
READY = re.compile(r"clavis team server listening on (http://\S+)")
START_TIMEOUT = 120.0  # under load (2 shared cores) a worker can take long to import and connect


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    with start_openbao(tmp_path_factory.mktemp("openbao")) as bao:
        yield bao


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with start_postgres(tmp_path_factory.mktemp("postgres")) as pg:
        yield pg


@pytest.fixture
def team_dsn(postgres: Postgres) -> Iterator[str]:
    """A fresh database for this test, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield postgres.dsn_for(name)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def team(openbao: OpenBao, team_dsn: str) -> Bootstrap:
    """A bootstrapped deployment under a prefix of its own."""
    prefix = "t" + uuid.uuid4().hex[:10]
    return bootstrap(
        openbao.addr,
        openbao.root_token,
        team_dsn,
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        prefix=prefix,
    )


@dataclass
class TeamServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    admin_key: str
    env: dict[str, str]

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=30, trust_env=False
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> list[int]:
        """Pids of the uvicorn worker processes (children of the supervisor)."""
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,stat=,args=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        )
        rows = [line.split(None, 2) for line in out.stdout.splitlines() if line.strip()]
        return [int(pid) for pid, stat, args in rows if not stat.startswith("Z") and "resource_tracker" not in args]


def start_server(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA, workers: int = 1) -> TeamServer:
    log = tmp_path / f"team-serve-{uuid.uuid4().hex[:6]}.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLAVIS_")},
        **team.env,
        "CLAVIS_UPSTREAM_CA": str(write_ca(upstream_ca, tmp_path / "upstream-ca.pem")),
    }
    code = f"from clavis_mcp.team.serve import serve; serve('127.0.0.1', 0, {workers})"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = READY.search(log.read_text(errors="replace"))
        if found:
            server = TeamServer(found.group(1), process, log, team.admin_key, env)
            wait_for_replicas(server, workers, deadline)
            return server
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"team serve did not start:\n{log.read_text(errors='replace')[-3000:]}")


def wait_for_replicas(server: TeamServer, count: int, deadline: float) -> None:
    """Until ``count`` distinct worker processes have answered /healthz (each on a new connection)."""
    seen: set[str] = set()
    while len(seen) < count and time.monotonic() < deadline:
        try:
            seen.add(httpx.get(f"{server.url}/healthz", timeout=5, trust_env=False).json()["replica"])
        except httpx.HTTPError:
            time.sleep(0.05)
    if len(seen) < count:
        raise RuntimeError(f"only {len(seen)} of {count} workers answered:\n{server.log_text()[-3000:]}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


TEST_SECRETS = (SECRET, "other-secret-0123456789abcdef", "rotated-secret-0123456789")


def assert_nothing_leaked(server: TeamServer, team: Bootstrap) -> None:
    """The server's log (all workers) and every audit row hold no test secret in any spelling."""
    sweep = Redactor("sweep", [Secret(s) for s in TEST_SECRETS])
    for where, text in (("log", server.log_text()), *(("audit row", row) for row in audit_rows(team))):
        _, found = redact_decoded(sweep, text.encode())
        assert found == 0, f"a test secret is in the server's {where}"


@pytest.fixture
def server(tmp_path: Path, team: Bootstrap, upstream_ca: trustme.CA) -> Iterator[TeamServer]:
    srv = start_server(tmp_path, team, upstream_ca)
    yield srv
    stop_server(srv.process)
    assert_nothing_leaked(srv, team)


def echo_definition(name: str, upstream: EchoUpstream, **kw: Any) -> dict[str, Any]:
    return service_to_json(make_service(name, f"127.0.0.1:{upstream.port}", local=True, **kw))


def add_echo(
    server: TeamServer,
    upstream: EchoUpstream,
    name: str = "echo",
    secret: str = SECRET,
    budget: dict[str, Any] | None = None,
    **kw: Any,
) -> None:
    definition = echo_definition(name, upstream, **kw)
    if budget is not None:
        definition["budget"] = budget
    with server.admin() as admin:
        answer = admin.post("/v1/admin/services", json={"definition": definition, "secret": secret})
        assert answer.status_code == 201, answer.text


def new_key(server: TeamServer, name: str, services: list[str], **kw: Any) -> str:
    with server.admin() as admin:
        answer = admin.post("/v1/admin/keys", json={"name": name, "services": services, **kw})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["key"])


def audit_rows(team: Bootstrap) -> list[str]:
    with psycopg.connect(team.env["CLAVIS_TEAM_DATABASE_URL"]) as conn:
        return [row[0] for row in conn.execute("SELECT record FROM audit ORDER BY time")]
