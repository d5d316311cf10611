"""The team admin verbs on the wire: what they send, and one clear line for each way a server refuses.

The server here is a real HTTP(S) server on loopback that records each request and answers
what a test tells it to: it stands in for the team server where a test needs an answer the real
one gives only in rare states (409, 429, 5xx, a non-JSON body). The end-to-end tests against the
real server are in test_cli_e2e.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
from click.testing import CliRunner

from clavis_mcp.clavis_cli import service_commands
from clavis_mcp.clavis_cli.main import main
from clavis_mcp.clavis_cli.team_commands import audit_params, parse_duration, service_from_options
from clavis_mcp.team.admin_client import AdminClient, service_definition
from clavis_mcp.vault import Secret
from clavis_mcp.vault.audit.filters import AuditFilter
from demo.echo_upstream import LoopbackHandler, serve_https, write_ca
from tests.conftest import SECRET

ADMIN_KEY = "clv-admin-key-for-tests-0123456789abcdef"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class AdminApi:
    """A loopback server that records requests and answers ``(status, body, headers)`` from ``answer``."""

    server: ThreadingHTTPServer
    url: str
    seen: list[Seen] = field(default_factory=list)
    answer: tuple[int, bytes, dict[str, str]] = (200, b"{}", {})

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answer = (status, raw, headers or {})


def _start(ca: trustme.CA | None) -> AdminApi:
    api: AdminApi

    class Handler(LoopbackHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.seen.append(Seen(self.command, self.path, dict(self.headers), json.loads(raw) if raw else None))
            status, body, headers = api.answer
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    if ca is None:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        scheme = "http"
    else:
        server, _ = serve_https(ca, Handler, ("127.0.0.1",))
        scheme = "https"
    api = AdminApi(server, f"{scheme}://127.0.0.1:{server.server_address[1]}")
    return api


@pytest.fixture
def api() -> Iterator[AdminApi]:
    served = _start(None)
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def env(api: AdminApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Client mode: the server's URL and an admin key; CLAVIS_HOME points at a folder that must stay absent."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLAVIS_HOME", str(home))
    monkeypatch.setenv("CLAVIS_API_URL", api.url)
    monkeypatch.setenv("CLAVIS_API_KEY", ADMIN_KEY)
    monkeypatch.delenv("CLAVIS_UPSTREAM_CA", raising=False)
    return home


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, ["team", *args], input=input)


ADD = ["add", "echo", "--host", "api.example.com", "--header", "x-api-key: {secret}", "--method", "GET",
       "--path-prefix", "/v1/", "--reveal", "never", "--secret-stdin"]  # fmt: skip


def test_team_add_sends_the_definition_the_local_add_would_store_and_the_secret_once(api: AdminApi, env: Path) -> None:
    result = run(*ADD, input=SECRET)
    assert result.exit_code == 0, result.output
    (request,) = api.seen
    assert (request.method, request.path) == ("POST", "/v1/admin/services")
    assert request.headers["Authorization"] == f"Bearer {ADMIN_KEY}"
    assert request.body["secret"] == SECRET
    definition = request.body["definition"]
    assert definition["name"] == "echo" and definition["hosts"] == ["api.example.com"]
    assert definition["methods"] == ["GET"] and definition["path_prefixes"] == ["/v1"]
    assert definition["reveal"] == "never" and definition["auth"]["kind"] == "header"
    assert SECRET not in result.output and SECRET not in json.dumps(definition)
    assert "added echo" in result.output


def test_the_client_verbs_write_nothing_to_a_local_vault(api: AdminApi, env: Path) -> None:
    api.reply(200, {"services": [], "keys": [], "records": [], "ok": True, "chains": 0, "records_": 0})
    for args, stdin in [(ADD, SECRET), (["list"], None), (["rotate", "echo", "--secret-stdin"], SECRET + "x"),
                        (["remove", "echo", "--yes"], None), (["user", "add", "a@b.test", "--password-stdin"], "pw"),
                        (["key", "list"], None), (["key", "revoke", "k1"], None), (["audit"], None),
                        (["audit", "verify"], None)]:  # fmt: skip
        result = run(*args, input=stdin)
        assert result.exit_code == 0, (args, result.output)
    assert not env.exists()


def test_team_add_has_exactly_the_local_add_options() -> None:
    team_add = main.get_command(None, "team").get_command(None, "add")  # type: ignore[union-attr, arg-type]
    assert [p.name for p in team_add.params] == [p.name for p in service_commands.add.params]


@pytest.mark.parametrize(
    "args",
    [["add", "Bad Name", "--host", "a.test", "--secret-stdin"],
     ["add", "svc", "--host", "a.test", "--header", "x-api-key: fixed", "--secret-stdin"],
     ["add", "svc", "--host", "a.test", "--header", "x: {secret}", "--query", "k", "--secret-stdin"],
     ["add", "svc", "--host", "http://a.test/", "--secret-stdin"],
     ["add", "svc", "--host", "a.test", "--auth", "basic", "--basic", "{username}:{secret}", "--secret-stdin"],
     ["add", "svc", "--host", "a.test", "--header", "x: {secret}", "--field-env", "username=U", "--secret-stdin"]],
    ids=["bad-name", "template-without-secret", "two-auth-kinds", "url-as-host", "second-secret-field",
         "field-env"],
)  # fmt: skip
def test_a_definition_the_local_add_refuses_is_refused_before_any_request(
    api: AdminApi, env: Path, args: list[str]
) -> None:
    result = run(*args, input=SECRET)
    assert result.exit_code != 0
    assert api.seen == []
    assert "Traceback" not in result.output and SECRET not in result.output


def test_the_secret_is_never_taken_without_stdin_env_or_a_terminal(api: AdminApi, env: Path) -> None:
    result = run("add", "svc", "--host", "a.test")
    assert result.exit_code == 2 and "--secret-stdin" in result.output
    assert api.seen == []


def test_secret_env_reads_the_variable(api: AdminApi, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", SECRET)
    assert run("rotate", "echo", "--secret-env", "MY_SECRET").exit_code == 0
    assert api.seen[-1].method == "PUT" and api.seen[-1].path == "/v1/admin/services/echo/secret"
    assert api.seen[-1].body == {"secret": SECRET}


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [(401, {"detail": "invalid key"}, {}, "refused CLAVIS_API_KEY"),
     (403, {"detail": "admin only"}, {}, "not allowed"),
     (404, {"detail": "unknown service 'x'"}, {}, "not found (404: unknown service 'x')"),
     (409, {"detail": "service echo exists"}, {}, "conflict"),
     (429, {"detail": "slow down"}, {"Retry-After": "7"}, "retry in 7 s"),
     (500, {"detail": "boom"}, {}, "the team server failed (500: boom)"),
     (502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}, "502"),
     (400, {"detail": "line one\nline two\x1b[31m"}, {}, "line one line two")],
    ids=["401", "403", "404", "409", "429", "500", "non-json", "control-chars"],
)  # fmt: skip
def test_each_refusal_is_one_clear_line(
    api: AdminApi, env: Path, status: int, body: object, headers: dict[str, str], expected: str
) -> None:
    api.reply(status, body, headers)
    result = run("remove", "echo", "--yes")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr and "\x1b" not in result.stderr
    assert ADMIN_KEY not in result.stderr


def test_an_unreachable_server_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens there
    monkeypatch.setenv("CLAVIS_API_URL", f"http://127.0.0.1:{port}")
    result = run("list")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "cannot reach the team server" in result.stderr and "team serve" in result.stderr


def test_an_untrusted_certificate_is_a_tls_line_and_clavis_upstream_ca_fixes_it(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    served = _start(ca)
    try:
        served.reply(200, {"services": [{"name": "echo", "hosts": ["a.test"], "auth": "header x-api-key"}]})
        monkeypatch.setenv("CLAVIS_API_URL", served.url)
        refused = run("list")
        assert refused.exit_code == 1 and "TLS with the team server" in refused.stderr
        assert "CLAVIS_UPSTREAM_CA" in refused.stderr and refused.stderr.count("\n") == 1
        assert served.seen == []
        monkeypatch.setenv("CLAVIS_UPSTREAM_CA", str(write_ca(ca, tmp_path / "ca.pem")))
        listed = run("list")
        assert listed.exit_code == 0 and "echo" in listed.output
    finally:
        served.server.shutdown()
        served.server.server_close()


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://clavis.example.com", "in clear"), ("ftp://127.0.0.1", "is not a URL"), ("", "is not set")],
    ids=["plain-http-remote", "not-http", "unset"],
)
def test_a_url_that_would_expose_the_key_or_is_no_url_is_refused(
    env: Path, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("CLAVIS_API_URL", url)
    result = run("list")
    assert result.exit_code == 1 and message in result.stderr


def test_no_key_is_one_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAVIS_API_KEY")
    result = run("key", "list")
    assert result.exit_code == 1 and "CLAVIS_API_KEY is not set" in result.stderr


def test_the_client_repr_never_shows_the_key() -> None:
    client = AdminClient("http://127.0.0.1:9", Secret(ADMIN_KEY))
    try:
        assert ADMIN_KEY not in repr(client) and "[secure]" in repr(client)
    finally:
        client.close()


def test_key_create_sends_scope_and_lifetime_and_prints_the_key_once_on_stdout(api: AdminApi, env: Path) -> None:
    api.reply(201, {"name": "ci", "key": "clv_new_key_value_0123456789", "services": ["a", "b"],
                    "expires_at": "2027-01-03T00:00:00+00:00"})  # fmt: skip
    result = run("key", "create", "ci", "--services", "a, b", "--expires", "30d")
    assert result.exit_code == 0, result.output
    assert api.seen[-1].body == {"name": "ci", "services": ["a", "b"], "expires_in_seconds": 30 * 86400,
                                 "role": "member"}  # fmt: skip
    assert result.stdout == "CLAVIS_API_KEY=clv_new_key_value_0123456789\n"
    assert "shown once" in result.stderr


def test_a_name_with_a_slash_stays_one_path_segment(api: AdminApi, env: Path) -> None:
    assert run("key", "revoke", "../services/echo").exit_code == 0
    assert api.seen[-1].path == "/v1/admin/keys/..%2Fservices%2Fecho"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 2592000), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 1209600), ("never", None), (None, None)],
)
def test_durations(text: str | None, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "0d", "-1d", "1y", "30 days"])
def test_a_bad_duration_is_refused(api: AdminApi, env: Path, text: str) -> None:
    result = run("key", "create", "ci", "--services", "a", "--expires", text)
    assert result.exit_code == 2 and "duration" in result.output
    assert api.seen == []


def test_audit_filters_reach_the_server_with_times_as_iso(api: AdminApi, env: Path) -> None:
    api.reply(200, {"records": [{"time": "2026-12-04T10:00:00Z", "source": "ci", "service": "echo",
                                 "method": "GET", "host": "a.test", "path": "/v1", "status": 200,
                                 "decision": "injected"}]})  # fmt: skip
    result = run("audit", "--service", "echo", "--agent", "ci", "--decision", "injected", "--since",
                 "2026-12-01", "-n", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    query = api.seen[-1].path.partition("?")[2]
    assert "service=echo" in query and "agent=ci" in query and "decision=injected" in query
    assert "limit=5" in query and "since=2026-12-01T00%3A00%3A00" in query
    assert "GET a.test/v1" in result.output and "injected" in result.output


def test_audit_params_leave_out_what_is_not_given() -> None:
    params = audit_params(AuditFilter(), 0)
    assert {k: v for k, v in params.items() if v is not None} == {}


def test_audit_verify_fails_with_each_problem(api: AdminApi, env: Path) -> None:
    api.reply(200, {"ok": False, "chains": 3, "records": 40, "problems": ["chain w2: record 7 edited"]})
    result = run("audit", "verify")
    assert result.exit_code == 1 and "FAILED" in result.stderr and "record 7 edited" in result.stderr
    api.reply(200, {"ok": True, "chains": 3, "records": 40, "problems": []})
    result = run("audit", "verify")
    assert result.exit_code == 0 and result.stdout.startswith("OK: 40 records in 3 chain(s)")


def test_service_definition_is_the_vault_serialisation_with_the_name() -> None:
    service = service_from_options(
        name="svc", connector_name="generic", hosts=("a.test",), auth=None, header="x-api-key: {secret}", basic=None,
        query=None, local=False, allow_http=False, reveal="masked", catalog=None, methods=(), prefixes=(), fixed=(),
        expires=None,
    )  # fmt: skip
    definition = service_definition(service)
    assert definition["name"] == "svc"
    assert set(definition) >= {"connector", "auth", "hosts", "local", "allow_http", "reveal", "methods"}


def test_audit_status_and_host_are_applied_to_what_the_server_returns(api: AdminApi, env: Path) -> None:
    base = {"time": "2026-12-04T10:00:00+00:00", "source": "ci", "service": "echo", "method": "GET", "path": "/"}
    newest = {**base, "host": "b.test", "status": 404, "decision": "injected", "id": "r2"}
    oldest = {**base, "host": "a.test", "status": 200, "decision": "injected", "id": "r1"}
    api.reply(200, {"records": [newest, oldest]})
    result = run("audit", "--status", "4xx", "--json")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["r2"]
    assert "status" not in api.seen[-1].path and "host" not in api.seen[-1].path
    result = run("audit", "--json")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["r1", "r2"]  # newest last


def test_team_serve_without_its_configuration_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLAVIS_TEAM_BAO_ADDR", "CLAVIS_TEAM_BAO_ROLE_ID", "CLAVIS_TEAM_BAO_SECRET_ID",
                 "CLAVIS_TEAM_DATABASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    result = run("serve", "--port", "0")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "CLAVIS_TEAM_DATABASE_URL" in result.stderr and "team dev" in result.stderr
