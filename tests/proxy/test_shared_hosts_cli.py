"""The agent verbs that choose a service on a shared host and the fate of other hosts, and the
standalone proxy's default for them (issue 16.12, 16.14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault, validate_secret
from tests.conftest import make_service


@pytest.fixture
def runner(home: Path) -> CliRunner:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--key-store", "keyfile"]).exit_code == 0
    vault = Vault.open(home)
    try:
        vault.add_service(
            make_service("personal-openai", "api.openai.com"), validate_secret("sk-personal-0123456789ab")
        )
        vault.add_service(make_service("work-openai", "api.openai.com"), validate_secret("sk-work-0123456789abcdef"))
    finally:
        vault.close()
    return runner


def listed(runner: CliRunner) -> dict[str, Any]:
    result = runner.invoke(main, ["agent", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {a["name"]: (a["deny_other_hosts"], a["uses"]) for a in json.loads(result.output)}


def test_agent_add_with_a_service_and_denied_other_hosts_then_changed(runner: CliRunner) -> None:
    added = runner.invoke(main, ["agent", "add", "ci", "--use", "work-openai", "--deny-other-hosts"])
    assert added.exit_code == 0, added.output
    assert listed(runner) == {"ci": (True, ["work-openai"])}
    used = runner.invoke(main, ["agent", "use", "ci", "personal-openai"])
    assert used.exit_code == 0 and "uses: personal-openai" in used.output
    assert runner.invoke(main, ["agent", "other-hosts", "ci", "pass"]).exit_code == 0
    assert listed(runner) == {"ci": (False, ["personal-openai"])}
    assert runner.invoke(main, ["agent", "use", "ci", "--clear"]).exit_code == 0
    assert listed(runner) == {"ci": (False, [])}
    text = runner.invoke(main, ["agent", "list"]).output
    assert "other hosts passed" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agent", "add", "ci", "--use", "wrok-openai"], "unknown service 'wrok-openai' for --use; known services:"),
        (["agent", "use", "ghost", "work-openai"], "unknown agent 'ghost'"),
        (["agent", "use", "ci"], "name one or more services, or --clear"),
    ],
    ids=["unknown-service", "unknown-agent", "nothing-named"],
)
def test_bad_agent_choices_get_one_line_errors(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_standalone_proxy_passes_other_hosts_by_default(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import clavis_mcp.proxy.standalone as standalone

    seen: list[Any] = []

    async def capture(vault: object, audit: object, ca: object, config: Any, **kw: object) -> None:
        seen.append(config)

    monkeypatch.setattr(standalone, "serve_until_signalled", capture)
    result = runner.invoke(main, ["proxy", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert [c.pass_other_hosts for c in seen] == [True]
