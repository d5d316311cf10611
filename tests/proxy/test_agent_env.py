from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clavis_mcp.proxy.agent_env import TRUST_VARIABLES, agent_exports, render

AWKWARD = "/home/o'brien/my certs/$HOME/\\bundle.pem"


def test_bash_output_evaluates_back_to_the_exact_values() -> None:
    exports = agent_exports("http://ci:tok-en_1@127.0.0.1:8899", Path(AWKWARD))
    script = render(exports, "bash") + 'printf "%s\\n" "$HTTPS_PROXY" "$no_proxy" "$SSL_CERT_FILE"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["http://ci:tok-en_1@127.0.0.1:8899", "localhost,127.0.0.1,::1", AWKWARD]


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("fish", "set -gx SSL_CERT_FILE '/home/o\\'brien/my certs/$HOME/\\\\bundle.pem'"),
        ("powershell", "$env:SSL_CERT_FILE = '/home/o''brien/my certs/$HOME/\\bundle.pem'"),
    ],
    ids=["fish", "powershell"],
)
def test_other_shells_quote_their_own_way(shell: str, expected: str) -> None:
    lines = render(agent_exports("http://a:b@127.0.0.1:1", Path(AWKWARD)), shell).splitlines()  # type: ignore[arg-type]
    assert expected in lines


def test_every_runtime_gets_the_bundle_and_both_spellings_of_the_proxy() -> None:
    exports = dict(agent_exports("http://a:b@127.0.0.1:1", Path("/b.pem")))
    assert all(exports[name] == "/b.pem" for name in TRUST_VARIABLES)
    assert exports["HTTPS_PROXY"] == exports["https_proxy"] == exports["HTTP_PROXY"] == exports["http_proxy"]
