"""`clavis-mcp audit report --html`: one self-contained file with the overview's figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.sync_api import expect

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import AuditLog

from .browser import ConsoleProblems, chromium
from .conftest import BY_DECISION, TOTAL
from .test_pages import segments


def report(tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["audit", "report", "--html", str(out), *args])
    assert result.exit_code == 0, result.output
    assert f"wrote the audit report to {out}" in result.output
    return out, out.read_text(encoding="utf-8")


def test_the_report_holds_the_overviews_figures_in_one_file(tmp_path: Path, known_log: AuditLog) -> None:
    _, text = report(tmp_path, "--since", "2h")
    assert f'data-total="{TOTAL}"' in text and segments(text) == BY_DECISION
    assert 'data-service="openai" data-agent="mcp" data-count="5" data-bytes="5000"' in text
    assert "method POST not allowed" in text and 'class="badge ok"' in text
    assert "<script" not in text and "<link" not in text
    assert re.findall(r'(?:src|href)="', text) == []  # nothing to fetch
    assert "default-src 'none'" in text


def test_the_report_covers_only_its_period(tmp_path: Path, known_log: AuditLog) -> None:
    _, text = report(tmp_path, "--since", "3d", "--until", "2d")
    assert 'data-total="0"' in text and "no requests in this period" in text


def test_a_bad_period_is_one_clear_line(tmp_path: Path, known_log: AuditLog) -> None:
    result = CliRunner().invoke(main, ["audit", "report", "--html", str(tmp_path / "r.html"), "--since", "soon"])
    assert result.exit_code == 1 and "cannot read the time 'soon'" in result.output
    result = CliRunner().invoke(main, ["audit", "report", "--html", str(tmp_path / "r.html"), "--since", "1h",
                                       "--until", "2h"])  # fmt: skip
    assert result.exit_code == 2 and "--until must be later than --since" in result.output
    assert not (tmp_path / "r.html").exists()


@pytest.mark.e2e
def test_the_report_opens_in_a_browser_with_no_network(tmp_path: Path, known_log: AuditLog) -> None:
    out, _ = report(tmp_path, "--since", "1d")
    problems = ConsoleProblems()
    requested: list[str] = []
    with chromium() as browser:
        context = browser.new_context(offline=True)
        context.route("**/*", lambda route: (requested.append(route.request.url), route.continue_()))
        tab = context.new_page()
        tab.on("console", problems)
        tab.goto(out.as_uri())
        expect(tab.locator("#total")).to_have_text(str(TOTAL))
        expect(tab.locator('#matrix td[data-service="openai"][data-agent="mcp"] b')).to_have_text("5")
        expect(tab.locator("#refusals")).to_contain_text("method POST not allowed")
        expect(tab.locator("#chain")).to_have_class("badge ok")
        fill = tab.locator("#timeline rect[data-decision=refused]").first.evaluate("r => getComputedStyle(r).fill")
        assert fill == "rgb(198, 40, 40)"  # the inline stylesheet applied
        context.close()
    assert requested == [out.as_uri()] and problems == []
