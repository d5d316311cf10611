"""`clavis-mcp proxy` with CLAVIS_API_URL set: not a team client yet, and it says so instead of
silently injecting from the local vault."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main


def test_proxy_with_a_team_url_warns_that_it_uses_the_local_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "none"))
    monkeypatch.setenv("CLAVIS_API_URL", "https://clavis.example.com")
    result = CliRunner().invoke(main, ["proxy", "--port", "0"])
    assert result.exit_code == 1  # no local vault here: the usual one-line error follows
    assert "CLAVIS_API_URL is set, but `clavis-mcp proxy` is not a team client yet" in result.stderr
    assert "clavis-mcp init" in result.stderr
