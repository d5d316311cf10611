"""`make team-demo` keeps working: it runs `python -m demo.team_demo`, which checks itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_the_team_demo_passes_every_check() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "demo.team_demo"], cwd=REPO, capture_output=True, text=True, timeout=280, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "FAIL" not in proc.stdout
    assert proc.stdout.count("PASS") == 10
    assert "caller received     Authorization: [REDACTED:demo-api]" in proc.stdout


def test_make_team_demo_runs_the_team_demo() -> None:
    makefile = (REPO / "Makefile").read_text()
    target = makefile.partition("\nteam-demo:")[2].partition("\n\n")[0]
    assert "-m demo.team_demo" in target
