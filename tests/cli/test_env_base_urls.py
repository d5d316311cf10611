"""`clavis-mcp env --base-urls`: each SDK's base-URL and API-key variables for base-URL mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main

SECRET = "sk-test-base-url-0123456789abcdefghij"


@pytest.fixture
def runner(home: Path) -> CliRunner:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--key-store", "keyfile"]).exit_code == 0
    for name, connector in (("my-openai", "openai"), ("claude", "anthropic"), ("hf", "huggingface")):
        added = runner.invoke(main, ["add", name, "--connector", connector, "--secret-stdin"], input=SECRET)
        assert added.exit_code == 0, added.output
    return runner


@pytest.mark.parametrize(
    ("shell", "openai_line"),
    [
        ("bash", "export OPENAI_BASE_URL='http://127.0.0.1:9911/s/my-openai/v1'"),
        ("fish", "set -gx OPENAI_BASE_URL 'http://127.0.0.1:9911/s/my-openai/v1'"),
        ("powershell", "$env:OPENAI_BASE_URL = 'http://127.0.0.1:9911/s/my-openai/v1'"),
    ],
)
@pytest.mark.reveals_secret  # the agent's token is printed as the API key, as `env` prints it in HTTPS_PROXY
def test_base_urls_are_printed_for_every_connector_that_has_one(
    runner: CliRunner, shell: str, openai_line: str
) -> None:
    token = runner.invoke(main, ["agent", "add", "sdk"]).stdout.strip()
    result = runner.invoke(main, ["env", "--base-urls", "--agent", "sdk", "--shell", shell, "--port", "9911"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert openai_line in lines
    assert any("ANTHROPIC_BASE_URL" in line and "/s/claude'" in line for line in lines)
    assert any("HF_ENDPOINT" in line and "/s/hf'" in line for line in lines)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN"):
        assert any(key in line and token in line for line in lines), key
    assert not any("PROXY" in line or "CA_BUNDLE" in line for line in lines)  # no proxy, no CA in this mode
    assert SECRET not in result.output


def test_no_base_url_connector_says_what_to_do(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--key-store", "keyfile"]).exit_code == 0
    runner.invoke(main, ["add", "x", "--host", "api.x.example", "--secret-stdin"], input=SECRET)
    result = runner.invoke(main, ["env", "--base-urls"])
    assert result.exit_code == 0
    assert result.stdout == "\n" or result.stdout == ""
    assert "use `clavis-mcp env` for HTTPS_PROXY mode" in result.stderr
