"""Secret references end to end: a service whose credential lives elsewhere (an environment
variable, a file, pass, OpenBao, 1Password/Bitwarden CLIs, AWS Secrets Manager) is injected by
the real embedded proxy into a request to a loopback HTTPS upstream that echoes what it got, so
the response redaction of the resolved value is exercised too; the audit record names the
reference and never holds the value; an unresolvable reference is a 503, never a bare request.

Real programs where they run here (pass with gpg, ``bao server -dev``, gnome-keyring on a private
D-Bus session bus for ``keyring://``); ``op``, ``bw`` and
``bws`` need their vendors' services, so fakes on PATH stand in for them; AWS is boto3 against a
loopback stand-in of the Secrets Manager JSON API, Google's official client against a loopback
stand-in of the Secret Manager REST API.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import hvac
import keyring
import keyring.core
import pytest
from keyring.backends import SecretService

from clavis_mcp.proxy import EmbeddedProxy
from clavis_mcp.team.engines import start_openbao
from clavis_mcp.vault import Vault
from clavis_mcp.vault.auth.registry import build
from clavis_mcp.vault.refs import cache, parse, stored
from demo.echo_upstream import EchoUpstream
from tests.conftest import make_service, proxy_client
from tests.proxy.auth_upstream import headers_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

VALUE = "sk-ref-resolved-Hq7Lm2Xp9Vt4Wc1Zk8"
ROTATED = "sk-ref-rotated-Jd5Nf0Rb3Yg6Qs2Pu4"


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def register(vault: Vault, upstream: EchoUpstream, ref: str, **fields: str) -> None:
    service = make_service("ref", f"127.0.0.1:{upstream.port}", local=True)
    if fields:
        service = replace(service, auth=build("headers", headers=["Authorization: Bearer {secret}",
                                                                  *(f"X-{f}: {{{f}}}" for f in fields)]))  # fmt: skip
    vault.add_service(service, stored(parse(ref)))
    for field, field_ref in fields.items():
        vault.set_secret("ref", field, stored(parse(field_ref)))


def audit_records(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


async def call(proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream) -> tuple[int, str]:
    async with proxy_client(proxy, home) as agent:
        response = await agent.get(f"https://127.0.0.1:{upstream.port}/v1/echo")
    return response.status_code, response.text


async def injected(proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, value: str = VALUE) -> None:
    status, text = await call(proxy, home, upstream)
    assert status == 200, text
    assert headers_of(upstream.received[-1])["authorization"] == f"Bearer {value}"
    assert value not in text and "[REDACTED:ref]" in text
    assert value not in (home / "audit.jsonl").read_text()


async def test_env_reference_is_injected_redacted_and_audited_by_name(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REF_TEST_KEY", VALUE)
    register(vault, upstream, "env://REF_TEST_KEY")
    await injected(proxy, home, upstream)
    [record] = [r for r in audit_records(home) if r.get("service") == "ref"]
    assert record["decision"] == "injected" and "credential from env://REF_TEST_KEY" in str(record["reason"])
    assert stored(parse("env://REF_TEST_KEY")).reveal() == vault.secret("ref").reveal()  # the vault holds the ref


async def test_a_rotation_at_the_source_is_seen_only_once_the_cached_value_expires(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REF_TEST_KEY", VALUE)
    monkeypatch.setenv("CLAVIS_REF_TTL", "3600")
    register(vault, upstream, "env://REF_TEST_KEY")
    await injected(proxy, home, upstream)
    monkeypatch.setenv("REF_TEST_KEY", ROTATED)
    await injected(proxy, home, upstream, VALUE)  # still cached
    monkeypatch.setenv("CLAVIS_REF_TTL", "0")
    cache.clear()
    await injected(proxy, home, upstream, ROTATED)


async def test_an_unresolvable_reference_is_a_503_and_nothing_reaches_the_upstream(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REF_TEST_MISSING", raising=False)
    register(vault, upstream, "env://REF_TEST_MISSING")
    status, text = await call(proxy, home, upstream)
    assert status == 503 and "REF_TEST_MISSING is not set" in text
    assert upstream.received == []


async def test_file_reference_and_a_field_from_another_file(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tmp_path: Path
) -> None:
    key, app = tmp_path / "key", tmp_path / "app"
    for path, value in ((key, VALUE + "\n"), (app, "app-id-from-file-Uy6Tr3")):
        path.write_text(value)
        path.chmod(0o600)
    register(vault, upstream, f"file://{key}", app_id=f"file://{app}")
    await injected(proxy, home, upstream)
    assert headers_of(upstream.received[-1])["x-app_id"] == "app-id-from-file-Uy6Tr3"


async def test_a_file_other_users_may_read_is_refused(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text(VALUE)
    key.chmod(0o644)
    register(vault, upstream, f"file://{key}")
    status, text = await call(proxy, home, upstream)
    assert status == 503 and "chmod 600" in text and upstream.received == []


@pytest.fixture
def password_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    if shutil.which("pass") is None:
        pytest.fail("pass is not installed: run scripts/ensure-system-deps")
    gnupg, store = tmp_path / "gnupg", tmp_path / "store"
    gnupg.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(gnupg), "PASSWORD_STORE_DIR": str(store)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "clavis-ref-test@example.invalid",
                    "default", "default", "never"], env=env, check=True, capture_output=True)  # fmt: skip
    subprocess.run(["pass", "init", "clavis-ref-test@example.invalid"], env=env, check=True, capture_output=True)
    monkeypatch.setenv("GNUPGHOME", str(gnupg))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(store))
    try:
        yield store
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False, capture_output=True)


async def test_pass_reference_reads_the_first_line_with_the_real_pass(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, password_store: Path
) -> None:
    subprocess.run(["pass", "insert", "--multiline", "api/openai"], input=f"{VALUE}\nuser: me\n".encode(),
                   check=True, capture_output=True)  # fmt: skip
    register(vault, upstream, "pass://api/openai")
    await injected(proxy, home, upstream)


async def test_bao_reference_reads_a_kv2_field_from_a_real_openbao(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bao = start_openbao(tmp_path)
    try:
        hvac.Client(url=bao.addr, token=bao.root_token).secrets.kv.v2.create_or_update_secret(
            path="apps/openai", secret={"key": VALUE}, mount_point="secret"
        )
        monkeypatch.setenv("BAO_ADDR", bao.addr)
        monkeypatch.setenv("BAO_TOKEN", bao.root_token)
        register(vault, upstream, "bao://secret/apps/openai#key")
        await injected(proxy, home, upstream)
        cache.clear()
        vault.remove_service("ref")
        register(vault, upstream, "bao://secret/apps/openai#missing")
        status, text = await call(proxy, home, upstream)
        assert status == 503 and "has no text field 'missing'" in text and VALUE not in text
    finally:
        bao.stop()


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretService.Keyring]:
    """A real gnome-keyring, unlocked with a throwaway password, on a session bus of its own."""
    for tool in ("dbus-daemon", "gnome-keyring-daemon"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/ensure-system-deps as root"
    user, run = tmp_path / "user", tmp_path / "run"
    user.mkdir(mode=0o700)
    run.mkdir(mode=0o700)
    address = f"unix:path={run / 'bus'}"
    env = {"PATH": os.environ["PATH"], "HOME": str(user), "XDG_RUNTIME_DIR": str(run),
           "DBUS_SESSION_BUS_ADDRESS": address}  # fmt: skip
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--address={address}"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    assert daemon.stdin is not None
    daemon.stdin.write(b"throwaway")
    daemon.stdin.close()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    backend = SecretService.Keyring()
    # keyring picks its backend once per process: put back "not chosen yet", not a backend on this bus
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    try:
        yield backend
    finally:
        for process in (daemon, bus):
            process.terminate()
            process.wait(timeout=10)


async def test_keyring_reference_reads_another_applications_item_from_a_real_secret_service(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, secret_service: SecretService.Keyring
) -> None:
    for _ in range(100):  # the daemon takes its bus name a moment after it starts
        try:
            secret_service.set_password("openai-desktop", "me@example.com", VALUE)
            break
        except Exception:
            await anyio.sleep(0.05)
    register(vault, upstream, "keyring://openai-desktop/me@example.com")
    await injected(proxy, home, upstream)


FAKE = """#!/bin/sh
# a stand-in for {program}: prints $FAKE_VALUE for exactly the expected arguments
if [ "$*" = "{args}" ]; then printf '%s' "$FAKE_VALUE"; exit 0; fi
echo "[ERROR] no such item: $*" >&2; exit 1
"""


@pytest.mark.parametrize(
    ("ref", "program", "args"),
    [
        ("op://Private/OpenAI/credential", "op", "read --no-newline op://Private/OpenAI/credential"),
        ("bw://openai-item", "bw", "get password openai-item"),
        ("bws://0f7c2b1e-8d3a-4c55-9e21-5a6b7c8d9e0f", "bws",
         "secret get 0f7c2b1e-8d3a-4c55-9e21-5a6b7c8d9e0f --output json"),
    ],
    ids=["1password-op", "bitwarden-bw", "bitwarden-bws"],
)  # fmt: skip
async def test_cli_backends_run_their_program_with_the_reference(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, ref: str, program: str, args: str,
) -> None:  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / program
    fake.write_text(FAKE.format(program=program, args=args))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VALUE", json.dumps({"value": VALUE}) if program == "bws" else VALUE)
    register(vault, upstream, ref)
    await injected(proxy, home, upstream)
    [record] = [r for r in audit_records(home) if r.get("service") == "ref"]
    assert f"credential from {ref}" in str(record["reason"])


class SecretsManagerStandIn(BaseHTTPRequestHandler):
    """The GetSecretValue call of the Secrets Manager JSON API, for a signed request only."""

    secrets: dict[str, str] = {}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        signed = self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 Credential=AKIDREFTEST/")
        target = self.headers.get("X-Amz-Target")
        if not signed or target != "secretsmanager.GetSecretValue" or body["SecretId"] not in self.secrets:
            self._answer(400, {"__type": "ResourceNotFoundException", "message": "not found"})
            return
        self._answer(200, {"Name": body["SecretId"], "SecretString": self.secrets[body["SecretId"]]})

    def _answer(self, status: int, data: dict[str, str]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_aws_secrets_manager_reference_through_boto3_and_a_json_key(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    SecretsManagerStandIn.secrets = {"prod/openai": json.dumps({"api_key": VALUE})}
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecretsManagerStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDREFTEST")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy-secret-for-the-stand-in")
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        register(vault, upstream, "aws-sm://prod/openai#api_key")
        await injected(proxy, home, upstream)
    finally:
        server.shutdown()
        server.server_close()


class GoogleSecretManagerStandIn(BaseHTTPRequestHandler):
    """``AccessSecretVersion`` of the Secret Manager REST API, for the expected bearer token only."""

    secrets: dict[str, str] = {}

    def do_GET(self) -> None:
        name = self.path.removeprefix("/v1/").split(":access")[0]
        if self.headers.get("Authorization") != "Bearer ya29.stand-in-token" or name not in self.secrets:
            raw, status = json.dumps({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}), 404
        else:
            data = base64.b64encode(self.secrets[name].encode()).decode()
            raw, status = json.dumps({"name": name, "payload": {"data": data}}), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_google_secret_manager_reference_through_the_official_client(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    GoogleSecretManagerStandIn.secrets = {"projects/my-project/secrets/openai-key/versions/latest": VALUE}
    server = ThreadingHTTPServer(("127.0.0.1", 0), GoogleSecretManagerStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("CLAVIS_GCP_SM_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.stand-in-token")
        register(vault, upstream, "gcp-sm://my-project/openai-key")
        await injected(proxy, home, upstream)
        cache.clear()
        vault.remove_service("ref")
        register(vault, upstream, "gcp-sm://my-project/missing")
        status, text = await call(proxy, home, upstream)
        assert status == 503 and "Google Secret Manager refused" in text and len(upstream.received) == 1
    finally:
        server.shutdown()
        server.server_close()


SLOW_OP = """#!/bin/sh
# a stand-in for op that answers only once the test lets it (or gives up after a while)
i=0
while [ ! -e "$RELEASE" ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i+1)); done
[ -e "$RELEASE" ] || { echo "[ERROR] not released" >&2; exit 1; }
printf '%s' "$FAKE_VALUE"
"""


async def test_a_slow_backend_does_not_hold_other_requests(
    vault: Vault, proxy: EmbeddedProxy, home: Path, upstream: EchoUpstream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """While ``op`` is still answering for one service, a request to another service goes through;
    only then is ``op`` let to answer (with the resolution on the proxy's loop, the second request
    would wait behind it, ``op`` would give up after about two seconds, and the first request would
    be a 503)."""
    bin_dir, release = tmp_path / "bin", tmp_path / "release"
    bin_dir.mkdir()
    (bin_dir / "op").write_text(SLOW_OP)
    (bin_dir / "op").chmod(0o700)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VALUE", VALUE)
    monkeypatch.setenv("RELEASE", str(release))
    register(vault, upstream, "op://Private/OpenAI/credential")
    other = make_service("other", f"localhost:{upstream.port}", local=True)
    vault.add_service(other, stored(parse("env://REF_OTHER_KEY")))
    monkeypatch.setenv("REF_OTHER_KEY", ROTATED)
    results: dict[str, int] = {}
    async with proxy_client(proxy, home) as agent, anyio.create_task_group() as group:

        async def slow() -> None:
            results["slow"] = (await agent.get(f"https://127.0.0.1:{upstream.port}/v1/slow")).status_code

        group.start_soon(slow)
        results["other"] = (await agent.get(f"https://localhost:{upstream.port}/v1/other")).status_code
        release.touch()
    assert results == {"other": 200, "slow": 200}
