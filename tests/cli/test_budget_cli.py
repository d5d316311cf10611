"""`clavis-mcp budget`: set, show and remove a service's local budget."""

from __future__ import annotations

from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import SECRET, make_service


def test_budget_is_set_shown_and_removed(vault: Vault) -> None:
    vault.add_service(make_service("svc", "api.x.test"), validate_secret(SECRET))
    runner = CliRunner()
    assert runner.invoke(main, ["budget", "svc"]).output == "svc: no local budget\n"
    assert runner.invoke(main, ["budget", "svc", "--max-requests", "100", "--per", "1h"]).output == (
        "svc: 100 requests per 1h\n"
    )
    assert runner.invoke(main, ["budget", "svc"]).output == "svc: 100 requests per 1h\n"
    assert runner.invoke(main, ["budget", "svc", "--off"]).output == "svc: no local budget\n"


def test_bad_budget_input_is_one_clear_line(vault: Vault) -> None:
    vault.add_service(make_service("svc", "api.x.test"), validate_secret(SECRET))
    runner = CliRunner()
    for args, message in [
        (["budget", "svc", "--max-requests", "5", "--per", "week"], "must look like 30s, 15m, 1h or 1d"),
        (["budget", "svc", "--max-requests", "0"], "at least 1"),
        (["budget", "ghost", "--max-requests", "5"], "unknown service 'ghost'"),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
