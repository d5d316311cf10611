"""deploy/compose.yaml holds together without a Docker daemon: its structure, the files it names,
the healthchecks each service is gated on, and the command lines it runs parse as our CLI's."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.team.config import ENV

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_stack_has_openbao_postgres_replicas_and_a_load_balancer(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"openbao", "postgres", "clavis", "lb"}
    assert services["clavis"]["deploy"]["replicas"] >= 2
    assert "raft" in (DEPLOY / "openbao.hcl").read_text()


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services and condition == {"condition": "service_healthy"}, (name, dependency)


def test_only_the_load_balancer_is_published_and_the_engines_are_on_an_internal_network(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert [name for name, s in services.items() if "ports" in s] == ["lb"]
    assert compose["networks"]["backend"]["internal"] is True
    for engine in ("openbao", "postgres"):
        assert services[engine]["networks"] == ["backend"]
    assert set(services["clavis"]["networks"]) == {"backend", "egress"}


def test_the_files_it_names_are_in_the_repository(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounted = [v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if v.startswith("./")]
    assert mounted and all((DEPLOY / path).is_file() for path in mounted)
    build = services["clavis"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    assert "dynamic a clavis 8700" in (DEPLOY / "Caddyfile").read_text()


def _parses(argv: list[str]) -> None:
    """The arguments after `clavis-mcp` are accepted by our CLI (parsed, not run)."""
    assert argv[0] == "clavis-mcp"
    context = main.make_context("clavis-mcp", argv[1:], resilient_parsing=False)
    command: click.Command = main
    args = argv[1:]
    while isinstance(command, click.Group):
        sub = command.get_command(context, args[0])
        assert sub is not None, args[0]
        command, args = sub, args[1:]
    command.make_context(command.name or "", list(args))


def test_the_replica_command_and_the_image_command_are_team_serve(compose: dict[str, Any]) -> None:
    command = compose["services"]["clavis"]["command"]
    assert command[:3] == ["clavis-mcp", "team", "serve"]
    _parses(command)
    cmd_line = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    image_command = shlex.split(cmd_line.removeprefix("CMD ").strip("[]").replace('",', '"'))
    assert image_command == command
    _parses(image_command)


def test_the_replicas_read_the_variables_team_serve_needs_from_the_bootstrap_file(compose: dict[str, Any]) -> None:
    replica = compose["services"]["clavis"]
    assert replica["env_file"] == [{"path": "./clavis.env", "required": False}]
    comment = (DEPLOY / "compose.yaml").read_text()
    for name in ENV:
        assert name.removeprefix("CLAVIS_TEAM") in comment
