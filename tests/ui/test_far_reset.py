"""An upstream's far rate-limit reset, or an out-of-range recorded time, never takes the page or report down.

Review 6, L2: ``x-ratelimit-reset: 99999999999999`` made the overview and ``audit report --html``
fail with ``ValueError: year 3170843 is out of range``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

from clavis_mcp.ui.guard import SESSION_HEADER
from clavis_mcp.ui.pages import local_time
from clavis_mcp.ui.report import write_report
from clavis_mcp.ui.server import running
from clavis_mcp.ui.source import AuditSource
from clavis_mcp.vault import AuditLog, Vault, validate_secret
from clavis_mcp.vault.limits import ratelimits
from demo.echo_upstream import LoopbackHandler
from tests.conftest import SECRET, local_upstream, make_service, proxy_client, running_proxy

FAR = "99999999999999"


class FarReset(LoopbackHandler):
    """An upstream announcing a window that resets in the year 3170843."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("x-ratelimit-limit", "60")
        self.send_header("x-ratelimit-remaining", "59")
        self.send_header("x-ratelimit-reset", FAR)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def pages_and_report(home: Path, vault: Vault, tmp_path: Path) -> tuple[dict[str, httpx.Response], str]:
    with (
        running(AuditSource(home, vault)) as page,
        httpx.Client(base_url=page.origin, headers={SESSION_HEADER: page.token}, trust_env=False) as client,
    ):
        paths = ("/", "/?period=hour", "/?period=week", "/records", "/approvals")
        answers = {path: client.get(path) for path in paths}
    now = datetime.now().astimezone()
    write_report(AuditSource(home, vault), now - timedelta(days=7), now, tmp_path / "report.html")
    return answers, (tmp_path / "report.html").read_text()


@pytest.mark.anyio
async def test_a_far_reset_from_an_upstream_leaves_the_overview_and_the_html_report_working(
    home: Path, vault: Vault, audit: AuditLog, upstream_ca: trustme.CA, tmp_path: Path
) -> None:
    with local_upstream(upstream_ca, FarReset, vault, "api") as port:
        async with running_proxy(vault, audit, home) as proxy, proxy_client(proxy, home) as agent:
            assert (await agent.get(f"https://127.0.0.1:{port}/v1/anything")).status_code == 200
    assert ratelimits.latest(vault, "api") is not None
    answers, report = pages_and_report(home, vault, tmp_path)
    assert {path: r.status_code for path, r in answers.items()} == dict.fromkeys(answers, 200)
    for html in (answers["/"].text, report):
        assert "59 of 60" in html and "<td>unknown</td>" in html


def test_a_recorded_time_no_date_can_hold_is_shown_raw(home: Path, vault: Vault, tmp_path: Path) -> None:
    vault.add_service(make_service("api", "api.example.test"), validate_secret(SECRET))
    ratelimits.record(vault, "api", {"x-ratelimit-remaining": "59", "x-ratelimit-reset": FAR}, 1e20)
    answers, report = pages_and_report(home, vault, tmp_path)
    assert answers["/"].status_code == 200
    for html in (answers["/"].text, report):
        assert "<td>1e+20</td>" in html


@pytest.mark.parametrize(
    ("epoch", "shown"),
    [(1e20, "1e+20"), (-1e20, "-1e+20"), (float("inf"), "inf"), (float("nan"), "nan"), (None, "")],
    ids=["far-future", "far-past", "infinite", "not-a-number", "none"],
)
def test_local_time_shows_the_raw_figure_when_no_date_holds_it(epoch: float | None, shown: str) -> None:
    assert local_time(epoch) == shown
