from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clavis_mcp.proxy.agent_env import NODE_PRELOAD, TRUST_VARIABLES, agent_exports, no_proxy, render
from clavis_mcp.vault import parse_host_rule

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


NO_PROXY_CASES = [
    ("no-service-on-loopback", ["api.openai.com"], "localhost,127.0.0.1,::1"),
    ("local-service-on-127", ["127.0.0.1:8080"], ""),
    ("service-on-localhost", ["localhost:3000"], ""),
    ("service-on-a-localhost-subdomain", ["app.localhost:3000"], ""),
    ("service-on-v6-loopback", ["[::1]:8443"], ""),
]


@pytest.mark.parametrize(("hosts", "expected"), [c[1:] for c in NO_PROXY_CASES], ids=[c[0] for c in NO_PROXY_CASES])
def test_no_proxy_never_exempts_a_host_a_service_owns(hosts: list[str], expected: str) -> None:
    assert no_proxy([parse_host_rule(h) for h in hosts]) == expected
    exports = dict(agent_exports("http://a:b@127.0.0.1:1", Path("/b.pem"), [parse_host_rule(h) for h in hosts]))
    assert exports["NO_PROXY"] == exports["no_proxy"] == expected  # exported even when empty: an inherited one goes


def test_node_gets_the_preload_in_front_of_its_own_options_once() -> None:
    exports = dict(agent_exports("http://a:b@127.0.0.1:1", Path("/b.pem"), environ={"NODE_OPTIONS": "--no-warnings"}))
    assert exports["NODE_OPTIONS"] == f'--require "{NODE_PRELOAD}" --no-warnings'
    assert exports["NODE_USE_ENV_PROXY"] == "1" and NODE_PRELOAD.is_file()
    again = dict(
        agent_exports("http://a:b@127.0.0.1:1", Path("/b.pem"), environ={"NODE_OPTIONS": exports["NODE_OPTIONS"]})
    )
    assert again["NODE_OPTIONS"] == exports["NODE_OPTIONS"]


@pytest.mark.e2e
@pytest.mark.parametrize(("no_proxy_value", "reaches"), [("127.0.0.1", True), ("", False)], ids=["exempt", "proxied"])
def test_node_preload_honours_no_proxy(no_proxy_value: str, reaches: bool) -> None:
    """The preload sends fetch to the proxy (HTTP_PROXY for an http URL; here a closed port) unless NO_PROXY
    exempts the host."""
    import http.server
    import os
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exports = dict(agent_exports("http://a:b@127.0.0.1:1", Path("/nonexistent.pem"), environ={}))
    env = {**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "NODE_OPTIONS": exports["NODE_OPTIONS"],
           "HTTP_PROXY": exports["HTTP_PROXY"],
           "NO_PROXY": no_proxy_value}  # fmt: skip
    script = "fetch(process.argv[1]).then(r => console.log('status', r.status), e => console.log('failed', e.cause))"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = subprocess.run(["node", "-e", script, url], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert out.stdout.startswith("status 200" if reaches else "failed"), out.stdout + out.stderr
    if not reaches:
        assert "ECONNREFUSED" in out.stdout and "127.0.0.1:1" in out.stdout  # it tried the proxy
