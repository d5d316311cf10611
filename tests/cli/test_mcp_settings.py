"""`clavis-mcp mcp-settings`: per-service write confirmation and live-check probe, stored with the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.mcp_front.settings import ServiceSettings, load_settings, parse_probe, save_settings
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.errors import InvalidService
from tests.conftest import SECRET, make_service


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def registered(home: Path) -> Path:
    assert run("init", "--key-store", "keyfile")[0] == 0
    vault = Vault.open(home)
    try:
        vault.add_service(make_service("api", "api.example.test"), validate_secret(SECRET))
    finally:
        vault.close()
    return home


def stored(home: Path) -> ServiceSettings:
    vault = Vault.open(home)
    try:
        return load_settings(vault, "api")
    finally:
        vault.close()


def test_settings_are_stored_shown_and_cleared(registered: Path) -> None:
    shown = run("mcp-settings", "api")[1].strip()
    assert shown == "api: confirm writes: no; approvals: none; probe: the connector's, if any"
    code, output = run("mcp-settings", "api", "--confirm-writes", "--probe", "GET /v1/me")
    assert code == 0 and output.strip() == "api: confirm writes: yes; approvals: writes; probe: GET /v1/me"
    assert stored(registered) == ServiceSettings(confirm_writes=True, probe=parse_probe("GET /v1/me"))
    assert run("mcp-settings", "api", "--no-confirm-writes", "--probe", "")[0] == 0
    assert stored(registered) == ServiceSettings()


@pytest.mark.parametrize("probe", ["POST /v1/charges", "GET v1/me", "GET /a b", "GET"], ids=str)
def test_probe_must_be_a_read_only_request_on_a_path(registered: Path, probe: str) -> None:
    code, output = run("mcp-settings", "api", "--probe", probe)
    assert code == 1 and "must look like 'GET /v1/models'" in output
    assert stored(registered) == ServiceSettings()


def test_unknown_service_lists_the_known_ones(registered: Path) -> None:
    code, output = run("mcp-settings", "nope", "--confirm-writes")
    assert code == 1 and "known services: api" in output


def test_settings_go_with_the_service_when_it_is_removed(vault: Vault) -> None:
    service = make_service("api", "api.example.test")
    vault.add_service(service, validate_secret(SECRET))
    save_settings(vault, "api", ServiceSettings(confirm_writes=True))
    vault.remove_service("api")
    vault.add_service(service, validate_secret(SECRET))
    assert load_settings(vault, "api") == ServiceSettings()
    with pytest.raises(InvalidService):
        parse_probe("DELETE /")


def test_no_confirm_writes_clears_the_policy_of_writes_so_what_is_shown_is_in_force(registered: Path) -> None:
    """`policy --approvals writes` then `mcp-settings --no-confirm-writes`: writes no longer wait (they
    did, while mcp-settings said "confirm writes: no"); an agent's own mode stays and is shown."""
    assert run("policy", "api", "--approvals", "writes")[0] == 0
    assert run("policy", "api", "--approvals", "all", "--agent", "ci")[0] == 0
    code, output = run("mcp-settings", "api", "--no-confirm-writes")
    assert code == 0 and output.strip() == (
        "api: confirm writes: no; approvals: none, agent ci: all; probe: the connector's, if any"
    )
    policy = stored(registered)
    assert not policy.needs_approval("mcp", "POST") and policy.needs_approval("ci", "GET")
    assert run("mcp-settings", "api")[1] == output
    code, output = run("mcp-settings", "api", "--confirm-writes")
    assert code == 0 and "confirm writes: yes; approvals: writes" in output
    assert stored(registered).needs_approval("mcp", "POST")
    assert run("policy", "api", "--approvals", "none")[0] == 0
    assert "confirm writes: no; approvals: none" in run("mcp-settings", "api")[1]


def test_no_confirm_writes_under_approvals_all_is_refused_and_points_to_the_policy_command(registered: Path) -> None:
    assert run("policy", "api", "--approvals", "all")[0] == 0
    code, output = run("mcp-settings", "api", "--no-confirm-writes")
    assert code == 1 and "approvals: all" in output and "clavis-mcp policy api --approvals" in output
    assert "Traceback" not in output and stored(registered).service_mode == "all"
    code, output = run("mcp-settings", "api", "--confirm-writes")  # all already asks for writes: unchanged
    assert code == 0 and "confirm writes: yes; approvals: all" in output and stored(registered).service_mode == "all"
