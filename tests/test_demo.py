"""The README's first command must keep working: `make demo` runs `python -m demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_passes_every_check() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert proc.stdout.count("PASS") == 5
