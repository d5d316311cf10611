"""The proxy verbs: agents, env, certs (the standalone proxy itself: tests/proxy)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from clavis_mcp.clavis_cli.main import main
from tests.proxy.proxy_process import start_proxy


@pytest.fixture
def runner(home: Path) -> CliRunner:
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--key-store", "keyfile"]).exit_code == 0
    return runner


def test_agent_token_is_printed_once_and_never_listed(runner: CliRunner) -> None:
    added = runner.invoke(main, ["agent", "add", "ci"])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert len(token) >= 40
    listed = runner.invoke(main, ["agent", "list", "--json"])
    assert [a["name"] for a in json.loads(listed.output)] == ["ci"]
    assert token not in listed.output
    assert runner.invoke(main, ["agent", "revoke", "ci"]).exit_code == 0
    assert json.loads(runner.invoke(main, ["agent", "list", "--json"]).output) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agent", "add", "Bad Name"], "invalid agent name"),
        (["agent", "revoke", "ghost"], "unknown agent 'ghost'"),
        (["env", "--agent", "ghost"], "clavis-mcp agent add ghost"),
        (["proxy", "--passthrough", "https://x.test/"], "--passthrough"),
    ],
    ids=["bad-name", "revoke-unknown", "env-unknown-agent", "bad-passthrough"],
)
def test_bad_input_is_one_clear_line_and_exit_1(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("shell", "line_start"),
    [("bash", "export HTTPS_PROXY='http://"), ("fish", "set -gx HTTPS_PROXY 'http://"),
     ("powershell", "$env:HTTPS_PROXY = 'http://")],
    ids=["bash", "fish", "powershell"],
)  # fmt: skip
def test_env_prints_proxy_no_proxy_and_trust_for_each_shell(runner: CliRunner, shell: str, line_start: str) -> None:
    result = runner.invoke(main, ["env", "--shell", shell, "--port", "9911"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(line_start) and "@127.0.0.1:9911'" in lines[0]
    for name in ("HTTP_PROXY", "NO_PROXY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "https_proxy", "no_proxy"):  # fmt: skip
        assert any(name in line for line in lines), name
    assert any("localhost,127.0.0.1,::1" in line for line in lines)


def test_env_without_agent_creates_the_default_agent_once(runner: CliRunner) -> None:
    first = runner.invoke(main, ["env"])
    second = runner.invoke(main, ["env"])
    assert "created proxy agent 'default'" in first.stderr and "created" not in second.stderr
    assert first.stdout == second.stdout


def test_certs_show_path_export_and_bundle_agree(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    path = Path(runner.invoke(main, ["certs", "path"]).stdout.strip())
    shown = runner.invoke(main, ["certs", "show"]).stdout
    exported = runner.invoke(main, ["certs", "export"]).stdout
    assert runner.invoke(main, ["certs", "export", str(tmp_path / "ca.pem")]).exit_code == 0
    bundle = Path(runner.invoke(main, ["certs", "bundle"]).stdout.strip())
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    assert ":".join(digest[i : i + 2] for i in range(0, 64, 2)) in shown
    assert exported == path.read_text() == (tmp_path / "ca.pem").read_text()
    assert "PRIVATE KEY" not in exported
    assert path.read_text().strip() in bundle.read_text()
    assert bundle.stat().st_mode & 0o077 == 0 and bundle.parent == home / "certs"


@pytest.mark.e2e
def test_proxy_port_0_prints_the_port_it_bound(runner: CliRunner) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proxy = start_proxy(env)
    try:
        assert proxy.ready.startswith(f"clavis-mcp proxy listening on http://127.0.0.1:{proxy.port} for 0 services")
        refused = httpx.get("http://127.0.0.1:4/", proxy=f"http://127.0.0.1:{proxy.port}", trust_env=False, timeout=20)
        assert refused.status_code == 407  # the named port is the clavis proxy, asking for an agent token
    finally:
        proxy.process.terminate()
        proxy.process.wait(timeout=20)


@pytest.mark.e2e
def test_a_taken_port_is_our_message_naming_our_option(runner: CliRunner, home: Path) -> None:
    """mitmproxy's own hint names its `--mode regular@PORT`, which is not an option of ours."""
    import socket
    import subprocess

    from tests.proxy.proxy_process import EXE

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([EXE, "proxy", "--port", str(port)], env=os.environ.copy(), capture_output=True,
                                text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "choose another with --port N" in result.stderr
    assert "--mode" not in result.stderr + result.stdout and "Traceback" not in result.stderr
