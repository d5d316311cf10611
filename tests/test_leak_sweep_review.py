"""Review F7: the final sweep (SECURITY-CASES 26) finds a leak wherever a test can make one.

An inner test run (a subprocess of pytest, the sweep as its plugin) leaks a credential in one
place per test; the sweep must fail each of them at teardown. Before this review it returned
early when the test wrapped no ``Secret`` (tests that keep the secret in a subprocess), and did
not read non-propagating loggers, httpx at WARNING, captured or ``capsys`` output, a
subprocess's output, log files other than ``audit*``, or Markdown and quoted-printable spellings.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
INNER = textwrap.dedent("""
    import logging, re, subprocess, sys
    from clavis_mcp.vault import Secret

    LEAKED_TOKEN = "inner-sweep-token-0123456789abcdef"
    log = logging.getLogger("clavis_mcp.proxy")

    def test_no_secret_object_but_a_known_constant():
        log.warning("oops %s", LEAKED_TOKEN)

    def test_markdown_spelling():
        log.warning("oops %s", re.escape(LEAKED_TOKEN))

    def test_quoted_printable_spelling():
        log.warning("oops %s", LEAKED_TOKEN.replace("-", "=2D"))

    def test_non_propagating_logger():
        quiet = logging.getLogger("some.library")
        quiet.propagate = False
        try:
            quiet.warning("k=%s", LEAKED_TOKEN)
        finally:
            quiet.propagate = True

    def test_httpx_warning():
        logging.getLogger("httpx").warning("GET https://x/?key=%s", LEAKED_TOKEN)

    def test_printed_and_left_to_the_capture():
        print("CLI says", LEAKED_TOKEN)

    def test_printed_and_read_with_capsys(capsys):
        print("CLI says", LEAKED_TOKEN)
        assert capsys.readouterr().out

    def test_subprocess_stderr():
        subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write({LEAKED_TOKEN!r})"],
                       capture_output=True, check=True)

    def test_log_file_not_named_audit(tmp_path):
        (tmp_path / "proxy.log").write_text(LEAKED_TOKEN)

    def test_wrapped_secret_in_a_log():
        Secret(LEAKED_TOKEN)
        log.warning("oops %s", LEAKED_TOKEN)

    def test_nothing_leaked():
        log.warning("all fine")
""")


def test_the_sweep_finds_a_credential_wherever_a_test_leaks_it(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.leak_sweep", "-p", "no:cacheprovider", "-q", "--tb=no",
         "--show-capture=no", "-rE", "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    failed = {line.split("::")[1].split(" ")[0] for line in run.stdout.splitlines() if line.startswith("ERROR ")}
    tests = {word.partition("(")[0] for word in INNER.split() if word.startswith("test_")}
    assert failed == tests - {"test_nothing_leaked"}, run.stdout[-2000:]
