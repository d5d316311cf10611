"""The team admin verbs against the real server: `team dev`'s stack (OpenBao, PostgreSQL, 3 workers).

Each verb goes through CliRunner with CLAVIS_API_URL/CLAVIS_API_KEY set, exactly as a person
runs it; the refusals are the server's own (403 for a member key, 404, 409, 401 after revoke).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.team.dev import DevStack, dev_stack
from clavis_mcp.team.engines import start_openbao, start_postgres
from tests.conftest import OTHER_SECRET, SECRET

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with dev_stack(workers=3) as running:
        yield running


@pytest.fixture
def admin_env(stack: DevStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.setenv("CLAVIS_API_URL", stack.url)
    monkeypatch.setenv("CLAVIS_API_KEY", stack.admin_key.reveal())
    return home


def team(*args: str, input: str | None = None, key: str | None = None) -> Result:
    env = {"CLAVIS_API_KEY": key} if key else None
    return CliRunner().invoke(main, ["team", *args], input=input, env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def add(name: str, secret: str = SECRET) -> Result:
    return team("add", name, "--host", "api.example.com", "--path-prefix", f"/{name}",
                "--header", "x-api-key: {secret}", "--secret-stdin", input=secret)  # fmt: skip


def test_the_admin_verbs_run_against_the_server_and_write_nothing_locally(admin_env: Path) -> None:
    ok(add("cli-svc"))
    listed = json.loads(ok(team("list", "--json")).stdout)
    (row,) = [r for r in listed if r["name"] == "cli-svc"]
    assert row["hosts"] == ["api.example.com"]
    ok(team("rotate", "cli-svc", "--secret-stdin", input=OTHER_SECRET))
    created = ok(team("key", "create", "cli-key", "--services", "cli-svc", "--expires", "30d"))
    assert created.stdout.startswith("CLAVIS_API_KEY=clv_")
    keys: list[dict[str, Any]] = json.loads(ok(team("key", "list", "--json")).stdout)
    assert {"cli-key", "admin"} <= {k["name"] for k in keys}
    ok(team("user", "add", "carol@example.com", "--password-stdin", input="a long enough password"))
    ok(team("key", "revoke", "cli-key"))
    ok(team("remove", "cli-svc", "--yes"))
    again = team("remove", "cli-svc", "--yes")
    assert again.exit_code == 1 and "404" in again.stderr
    records = [json.loads(line) for line in ok(team("audit", "--json", "-n", "0")).stdout.splitlines()]
    actions = [r.get("action") for r in records if r.get("service") == "cli-svc" or r.get("reason") == "cli-key"]
    assert {"add", "rotate", "remove"} <= set(actions)
    assert ok(team("audit", "verify")).stdout.startswith("OK: ")
    assert not admin_env.exists()
    everything = json.dumps(records) + json.dumps(listed)
    assert SECRET not in everything and OTHER_SECRET not in everything


def test_the_servers_refusals_are_one_line_each(admin_env: Path) -> None:
    ok(add("dup-svc"))
    duplicate = add("dup-svc")
    assert duplicate.exit_code == 1 and "409" in duplicate.stderr and duplicate.stderr.count("\n") == 1
    missing = team("remove", "no-such-svc", "--yes")
    assert missing.exit_code == 1 and "not found (404" in missing.stderr
    member = ok(team("key", "create", "member-key", "--services", "dup-svc")).stdout.strip().partition("=")[2]
    refused = team("key", "list", key=member)
    assert refused.exit_code == 1 and "not allowed" in refused.stderr and "403" in refused.stderr
    ok(team("key", "revoke", "member-key"))
    revoked = team("list", key=member)
    assert revoked.exit_code == 1 and "401" in revoked.stderr and member not in revoked.stderr
    ok(team("remove", "dup-svc", "--yes"))


def test_team_bootstrap_prints_what_team_serve_needs_and_an_admin_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_openbao(tmp_path) as bao, start_postgres(tmp_path) as postgres:
        monkeypatch.setenv("BAO_TOKEN", bao.root_token)
        monkeypatch.setenv("CLAVIS_TEAM_DATABASE_URL", postgres.dsn)
        result = CliRunner().invoke(
            main,
            ["team", "bootstrap", "--bao-addr", bao.addr, "--admin-email", "root@example.com", "--password-stdin"],
            input="a long enough password",
        )
    assert result.exit_code == 0, result.output
    lines = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    assert {"CLAVIS_TEAM_BAO_ADDR", "CLAVIS_TEAM_BAO_ROLE_ID", "CLAVIS_TEAM_BAO_SECRET_ID",
            "CLAVIS_TEAM_DATABASE_URL", "CLAVIS_API_KEY"} <= set(lines)  # fmt: skip
    assert bao.root_token not in result.output


def test_team_bootstrap_never_takes_the_root_token_from_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    result = CliRunner().invoke(
        main, ["team", "bootstrap", "--bao-addr", "http://127.0.0.1:1", "--admin-email", "a@b.test"]
    )
    assert result.exit_code == 2 and "BAO_TOKEN" in result.output
    assert os.environ.get("BAO_TOKEN") is None


def test_a_removed_service_is_no_longer_listed_by_the_worker_that_added_it(stack: DevStack) -> None:
    from clavis_mcp.clavis_cli.team_commands import service_from_options
    from clavis_mcp.team.admin_client import AdminClient, service_definition
    from clavis_mcp.vault import Secret

    service = service_from_options(name="gone-svc", connector_name="generic", hosts=("gone.example.com",),
                                   header=("x-api-key: {secret}",), reveal="masked")  # fmt: skip
    with AdminClient(stack.url, stack.admin_key) as client:  # one keep-alive connection: one worker
        client.add_service(service_definition(service), Secret(SECRET))
        client.remove("gone-svc")
        assert "gone-svc" not in [row["name"] for row in client.services()]
