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
    assert run("mcp-settings", "api")[1].strip() == "api: confirm writes: no; probe: the connector's, if any"
    code, output = run("mcp-settings", "api", "--confirm-writes", "--probe", "GET /v1/me")
    assert code == 0 and output.strip() == "api: confirm writes: yes; probe: GET /v1/me"
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
