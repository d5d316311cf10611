"""`clavis-mcp oauth`: registration, the browser login with PKCE and state, re-login after a dead grant.

The login runs as a real subprocess; the test plays the browser: it opens the printed URL on
the loopback OAuth server and follows the redirect to the command's loopback listener.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
import trustme
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault
from clavis_mcp.vault.errors import ReauthRequired
from clavis_mcp.vault.oauth import state as oauth_store
from clavis_mcp.vault.oauth.refresh import ensure_fresh, refresh_after_rejection
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, PUBLIC_CLIENT_ID, OAuthServer

pytestmark = pytest.mark.e2e
EXE = str(Path(sys.executable).parent / "clavis-mcp")


@pytest.fixture
def server(upstream_ca: trustme.CA) -> Iterator[OAuthServer]:
    with OAuthServer.start(upstream_ca) as s:
        yield s


@pytest.fixture
def env(vault: Vault) -> dict[str, str]:
    return {**os.environ, "ACME_CLIENT_SECRET": CLIENT_SECRET}


def add_args(server: OAuthServer, name: str = "acme") -> list[str]:
    return [
        "oauth", "add", name, "--host", f"127.0.0.1:{server.port}", "--local", "--token-url", server.token_url,
        "--authorize-url", server.authorize_url, "--client-id", CLIENT_ID, "--scope", "read", "--scope", "write",
        "--client-secret-env", "ACME_CLIENT_SECRET", "--no-browser", "--timeout", "60",
    ]  # fmt: skip


class Login:
    """A running `oauth add`/`oauth login` and the authorization URL it printed."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([EXE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.printed: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.printed.append(line)
            if line.startswith("https://"):
                self.url = line.strip()
                return
        raise AssertionError("no login URL printed: " + "".join(self.printed) + self.proc.stderr.read())  # type: ignore[union-attr]

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    def finish(self) -> tuple[int, str]:
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, "".join(self.printed) + out + err


def browser(upstream_ca: trustme.CA) -> httpx.Client:
    trust = ssl.create_default_context()
    upstream_ca.configure_trust(trust)
    return httpx.Client(verify=trust, trust_env=False, follow_redirects=False)


def tokens_issued(server: OAuthServer) -> list[str]:
    return [*server.state.access, *server.state.refresh, CLIENT_SECRET]


def test_login_with_pkce_and_state_stores_tokens_and_prints_none(
    env: dict[str, str], server: OAuthServer, upstream_ca: trustme.CA, vault: Vault
) -> None:
    login = Login(add_args(server), env)
    query = login.query
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 32
    assert query["redirect_uri"].startswith("http://127.0.0.1:") and query["scope"] == "read write"
    with browser(upstream_ca) as b:
        redirect = b.get(login.url).headers["location"]
        forged = redirect.replace(query["state"], "forged-state")
        assert b.get(forged).status_code == 400  # a redirect from another login attempt is ignored
        assert b.get(query["redirect_uri"].replace("/callback", "/favicon.ico")).status_code == 404
        done = b.get(redirect)
    assert done.status_code == 200 and "Logged in" in done.text
    code, output = login.finish()
    assert code == 0, output
    assert "added acme (oauth2, refresh_token grant)" in output and "refreshed automatically" in output
    for value in tokens_issued(server):
        assert value not in output
    record = oauth_store.load(vault, "acme")
    assert record is not None and record.state == "active" and record.has_refresh_token
    assert vault.secret("acme").reveal() in server.state.access
    assert server.state.hits == {"authorization_code": 1}


def test_login_after_a_dead_grant_makes_the_service_work_again(
    env: dict[str, str], server: OAuthServer, upstream_ca: trustme.CA, vault: Vault
) -> None:
    login = Login(add_args(server), env)
    with browser(upstream_ca) as b:
        b.get(b.get(login.url).headers["location"])
    assert login.finish()[0] == 0
    server.state.revoke_refresh_tokens()
    server.state.expire_access_tokens()
    record = oauth_store.load(vault, "acme")
    assert record is not None
    with pytest.raises(ReauthRequired):
        anyio.run(refresh_after_rejection, vault, "acme", record.access_fp)
    status = CliRunner().invoke(main, ["oauth", "status", "acme"])
    assert "reauth_required" in status.output and "clavis-mcp oauth login acme" in status.output

    again = Login(["oauth", "login", "acme", "--no-browser", "--timeout", "60"], env)
    with browser(upstream_ca) as b:
        b.get(b.get(again.url).headers["location"])
    code, output = again.finish()
    assert code == 0, output
    assert "logged in to acme" in output
    fresh = anyio.run(ensure_fresh, vault, "acme")
    assert fresh is not None and fresh.reveal() in server.state.access
    assert "acme: unknown: OAuth access token" in CliRunner().invoke(main, ["oauth", "status", "acme"]).output
    for value in tokens_issued(server):
        assert value not in output


def test_a_refused_login_is_one_clear_line_and_stores_nothing(
    env: dict[str, str], server: OAuthServer, upstream_ca: trustme.CA, vault: Vault
) -> None:
    login = Login(add_args(server), env)
    callback = f"{login.query['redirect_uri']}?error=access_denied&state={login.query['state']}"
    with browser(upstream_ca) as b:
        assert b.get(callback).status_code == 200
    code, output = login.finish()
    assert code == 1 and "the provider refused the login: access_denied" in output
    assert "Traceback" not in output
    assert vault.list_services() == []


def test_client_credentials_add_gets_a_token_without_a_browser(
    env: dict[str, str], server: OAuthServer, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_CLIENT_SECRET", CLIENT_SECRET)
    args = ["oauth", "add", "machine", "--host", f"127.0.0.1:{server.port}", "--local", "--grant",
            "client_credentials", "--token-url", server.token_url, "--client-id", CLIENT_ID, "--client-auth",
            "basic", "--client-secret-env", "ACME_CLIENT_SECRET"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert server.state.hits == {"client_credentials": 1}
    assert vault.secret("machine").reveal() in server.state.access
    for value in tokens_issued(server):
        assert value not in result.output
    assert "machine: unknown: OAuth access token (expires in" in CliRunner().invoke(main, ["oauth", "status"]).output


def machine_args(server: OAuthServer) -> list[str]:
    """`oauth add machine` with the client-credentials grant (the client secret from ACME_CLIENT_SECRET)."""
    return ["oauth", "add", "machine", "--host", f"127.0.0.1:{server.port}", "--local", "--grant",
            "client_credentials", "--token-url", server.token_url, "--client-id", CLIENT_ID,
            "--client-secret-env", "ACME_CLIENT_SECRET"]  # fmt: skip


def test_rotate_on_an_oauth_service_points_to_login_and_changes_nothing(
    env: dict[str, str], server: OAuthServer, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_CLIENT_SECRET", CLIENT_SECRET)
    assert CliRunner().invoke(main, machine_args(server)).exit_code == 0
    before = vault.secret("machine").reveal()
    result = CliRunner().invoke(main, ["rotate", "machine", "--secret-stdin"], input="sk-manual-0123456789abcdef")
    assert result.exit_code == 1
    assert "clavis-mcp oauth login machine" in result.output
    assert vault.secret("machine").reveal() == before
    listed = json.loads(CliRunner().invoke(main, ["list", "--json"]).output)
    assert listed[0]["auth"].startswith("oauth2 (client_credentials)")


def test_edit_cannot_turn_an_oauth_service_into_a_plain_header_one(
    env: dict[str, str], server: OAuthServer, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its refresh and the redaction of its refresh token follow the oauth2 method: keep it."""
    monkeypatch.setenv("ACME_CLIENT_SECRET", CLIENT_SECRET)
    assert CliRunner().invoke(main, machine_args(server)).exit_code == 0
    before = vault.get_service("machine")
    result = CliRunner().invoke(main, ["edit", "machine", "--auth", "header", "--header", "X-Key: {secret}"])
    assert result.exit_code == 2 and "its auth stays oauth2" in result.output
    assert vault.get_service("machine") == before
    assert CliRunner().invoke(main, ["edit", "machine", "--fixed-header", "X-V: 1"]).exit_code == 0
    assert vault.get_service("machine").auth.extra_headers == (("X-V", "1"),)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--token-url", "http://127.0.0.1:1/token"], 1, "must be an https:// URL"),
        (["--grant", "password"], 2, "Invalid value for '--grant'"),
        (["--auth-param", "nonsense"], 2, "must look like KEY=VALUE"),
        (["--auth-param", "state=fixed"], 1, "set by clavis-mcp itself"),
    ],
    ids=["plain-http-token-url", "unknown-grant", "bad-auth-param", "auth-param-overrides-state"],
)
def test_bad_oauth_input_is_refused_before_anything_happens(
    env: dict[str, str], server: OAuthServer, vault: Vault, args: list[str], code: int, message: str
) -> None:
    result = CliRunner().invoke(main, [*add_args(server), *args], env={"ACME_CLIENT_SECRET": CLIENT_SECRET})
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert sum(server.state.hits.values()) == 0 and vault.list_services() == []


def test_login_names_what_is_wrong_with_the_service(env: dict[str, str], vault: Vault) -> None:
    result = CliRunner().invoke(main, ["oauth", "login", "ghost", "--no-browser"])
    assert result.exit_code == 1 and "unknown service 'ghost'" in result.output


BROWSER_SCRIPT = """#!{python}
import os, sys, httpx
with httpx.Client(verify=os.environ["CLAVIS_UPSTREAM_CA"], trust_env=False) as b:
    redirect = b.get(sys.argv[1]).headers["location"]
    sys.exit(0 if b.get(redirect).status_code == 200 else 1)
"""


def test_the_browser_is_opened_on_the_login_url(
    env: dict[str, str], server: OAuthServer, vault: Vault, tmp_path: Path
) -> None:
    """BROWSER names a real program (here a scripted browser) that webbrowser.open launches."""
    browser_program = tmp_path / "scripted-browser"
    browser_program.write_text(BROWSER_SCRIPT.format(python=sys.executable))
    browser_program.chmod(0o700)
    args = [a for a in add_args(server) if a != "--no-browser"]
    done = subprocess.run(
        [EXE, *args], env={**env, "BROWSER": str(browser_program)}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Opened your browser to log in to acme" in done.stdout
    assert server.state.hits == {"authorization_code": 1}
    assert vault.secret("acme").reveal() in server.state.access


def test_a_public_client_logs_in_with_pkce_alone(
    env: dict[str, str], server: OAuthServer, upstream_ca: trustme.CA, vault: Vault
) -> None:
    args = add_args(server)
    args[args.index(CLIENT_ID)] = PUBLIC_CLIENT_ID
    args.remove("--client-secret-env")
    args.remove("ACME_CLIENT_SECRET")
    login = Login([*args, "--public-client"], env)
    with browser(upstream_ca) as b:
        b.get(b.get(login.url).headers["location"])
    code, output = login.finish()
    assert code == 0, output
    assert oauth_store.client_secret(vault, "acme") is None
    assert vault.secret("acme").reveal() in server.state.access


def test_no_client_secret_and_no_terminal_is_a_usage_error(env: dict[str, str], server: OAuthServer) -> None:
    args = add_args(server)
    args.remove("--client-secret-env")
    args.remove("ACME_CLIENT_SECRET")
    result = CliRunner().invoke(main, args)
    assert (
        result.exit_code == 2 and "--client-secret-stdin, --client-secret-env VAR, or --public-client" in result.output
    )
    assert sum(server.state.hits.values()) == 0
