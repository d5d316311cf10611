"""`clavis-mcp audit` shows an agent's bidi/format and line-separator characters escaped, as it does
control characters: a U+202E in a path would otherwise draw the rest of the line reversed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import AuditLog, Vault

CASES = [
    pytest.param("\u202e", "\\u202e", id="right-to-left-override"),
    pytest.param("\u2066", "\\u2066", id="left-to-right-isolate"),
    pytest.param("\u200b", "\\u200b", id="zero-width-space"),
    pytest.param("\u2028", "\\u2028", id="line-separator"),
    pytest.param("\u2029", "\\u2029", id="paragraph-separator"),
    pytest.param("\x1b", "\\x1b", id="escape"),
    pytest.param("\x85", "\\x85", id="next-line"),
]


@pytest.mark.parametrize(("char", "escaped"), CASES)
def test_audit_prints_an_agent_path_with_the_character_escaped(home: Path, char: str, escaped: str) -> None:
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    vault = Vault.open(home)
    try:
        AuditLog.for_vault(vault).append(source="ci-bot", service="openai", method="DELETE", scheme="https",
                                         host="api.openai.com", port=443, path=f"/v1/files/{char}gpj.exe",
                                         status=200, decision="injected")  # fmt: skip
    finally:
        vault.close()
    result = CliRunner().invoke(main, ["audit"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"/v1/files/{escaped}gpj.exe" in result.output
    assert char not in result.output
