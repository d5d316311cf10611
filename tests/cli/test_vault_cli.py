"""The vault verbs end to end through the real CLI: key stores, lifecycle, export/import, audit.

CliRunner gives no terminal, as in scripts and CI: nothing may prompt, secrets come from
stdin or the environment, and no output ever holds a secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import AuditLog, Vault
from clavis_mcp.vault.keys.passphrase import ENV_VAR

EXE = str(Path(sys.executable).parent / "clavis-mcp")
KEY = "sk-ant-api03-0123456789abcdefghijklmnopqrstuv"
NEW_KEY = "sk-ant-api03-ZYXWVUTSRQPONMLKJIHGFEDCBA9876"
PASSPHRASE = "a passphrase for the tests"


@pytest.fixture
def runner(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return CliRunner()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert KEY not in result.output and NEW_KEY not in result.output
    return result


def as_json(result: Result) -> object:
    return json.loads(ok(result).stdout)


@pytest.fixture
def initialised(runner: CliRunner) -> CliRunner:
    ok(runner.invoke(main, ["init"]))
    return runner


def test_init_without_a_keychain_or_terminal_falls_back_to_a_key_file_with_a_warning(runner: CliRunner) -> None:
    result = ok(runner.invoke(main, ["init", "--json"]))
    assert json.loads(result.stdout)["key_store"] == "keyfile"
    assert "warning:" in result.stderr and "any process running as this user" in result.stderr


def test_init_with_an_explicit_keychain_that_is_missing_fails_and_creates_nothing(
    runner: CliRunner, home: Path
) -> None:
    result = runner.invoke(main, ["init", "--key-store", "keychain"])
    assert result.exit_code == 1 and "no OS keychain" in result.output and "--key-store passphrase" in result.output
    assert not (home / "vault.db").exists()


def test_passphrase_vault_from_init_to_use(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)
    assert as_json(runner.invoke(main, ["init", "--key-store", "passphrase", "--json"]))["key_store"] == "passphrase"  # type: ignore[index]
    ok(runner.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY))
    monkeypatch.setenv(ENV_VAR, "not the passphrase")
    wrong = runner.invoke(main, ["list"])
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.output and "Traceback" not in wrong.output
    monkeypatch.delenv(ENV_VAR)
    missing = runner.invoke(main, ["list"])
    assert missing.exit_code == 1 and ENV_VAR in missing.output


def test_passphrase_init_without_a_passphrase_does_not_prompt(runner: CliRunner, home: Path) -> None:
    result = runner.invoke(main, ["init", "--key-store", "passphrase"])
    assert result.exit_code == 1 and ENV_VAR in result.output
    assert not (home / "vault.db").exists()


def test_add_by_connector_fills_hosts_auth_and_fixed_headers(initialised: CliRunner) -> None:
    view = as_json(
        initialised.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin", "--json"], input=KEY)
    )
    assert view["hosts"] == ["api.anthropic.com"] and view["auth"] == "header x-api-key: {secret}"  # type: ignore[index]
    assert view["extra_headers"] == {"anthropic-version": "2023-06-01"}  # type: ignore[index]
    assert view["fingerprint"].startswith("hmac:")  # type: ignore[index]


GENERIC = [
    (["--auth", "bearer"], "header Authorization: Bearer {secret}"),
    (["--auth", "header", "--header", "X-Key: {secret}"], "header X-Key: {secret}"),
    (["--auth", "basic"], "basic auth {secret}:"),
    (["--basic", "user:{secret}"], "basic auth user:{secret}"),
    (["--auth", "query", "--query", "key"], "query parameter key"),
    (["--header", "Authorization: Token {secret}"], "header Authorization: Token {secret}"),
]


@pytest.mark.parametrize(("args", "auth"), GENERIC, ids=["bearer", "header", "basic", "basic-user", "query", "legacy"])
def test_add_generic_with_each_auth_method(initialised: CliRunner, args: list[str], auth: str) -> None:
    view = as_json(
        initialised.invoke(main, ["add", "svc", "--host", "api.x.test", *args, "--secret-stdin", "--json"], input=KEY)
    )
    assert view["auth"] == auth  # type: ignore[index]


BAD_ADDS = [
    (["add", "svc", "--connector", "generic"], "no default host"),
    (["add", "svc", "--connector", "nope"], "unknown connector 'nope'"),
    (["add", "svc", "--host", "*.co.uk"], "public suffix"),
    (["add", "svc", "--host", "a.test", "--auth", "query"], "needs --query"),
    (["add", "svc", "--host", "a.test", "--auth", "oauth2"], "OAuth commands"),
    (["add", "svc", "--host", "a.test", "--path-prefix", "/a/../b"], "'..'"),
    (["add", "svc", "--host", "a.test", "--method", "CONNECT"], "CONNECT"),
    (["add", "svc", "--host", "a.test", "--fixed-header", "X-A: 1\r\nX-B: 2"], "plain value"),
    (["add", "svc", "--host", "a.test", "--expires", "soon"], "not a date"),
]


@pytest.mark.parametrize(
    ("args", "message"),
    BAD_ADDS,
    ids=["generic-without-host", "unknown-connector", "psl-wildcard", "query-without-param", "oauth2",
         "dot-dot-prefix", "connect-method", "crlf-fixed-header", "bad-expiry"],
)  # fmt: skip
def test_bad_add_is_refused_clearly_and_changes_nothing(initialised: CliRunner, args: list[str], message: str) -> None:
    result = initialised.invoke(main, [*args, "--secret-stdin"], input=KEY)
    assert result.exit_code in (1, 2) and message in result.output and "Traceback" not in result.output
    assert as_json(initialised.invoke(main, ["list", "--json"])) == []


def test_no_secret_source_without_a_terminal_is_refused_not_blocked(initialised: CliRunner) -> None:
    result = initialised.invoke(main, ["add", "svc", "--host", "a.test"])
    assert result.exit_code == 2 and "--secret-stdin or --secret-env" in result.output


def test_services_may_share_a_host(initialised: CliRunner) -> None:
    """A personal and a work key for one provider (issue 16.14): agents choose with `agent use`."""
    ok(initialised.invoke(main, ["add", "wild", "--host", "*.x.test", "--secret-stdin"], input=KEY))
    ok(initialised.invoke(main, ["add", "api", "--host", "api.x.test", "--secret-stdin"], input=NEW_KEY))
    result = initialised.invoke(main, ["add", "api", "--host", "api.x.test", "--secret-stdin"], input=NEW_KEY)
    assert result.exit_code == 1 and "a service named 'api' already exists" in result.output


def test_show_gives_metadata_and_fingerprint_never_the_value(initialised: CliRunner) -> None:
    ok(
        initialised.invoke(
            main, ["add", "gh", "--connector", "github", "--expires", "2030-01-31", "--secret-stdin"], input=KEY
        )
    )
    view = as_json(initialised.invoke(main, ["show", "gh", "--json"]))
    assert view["expires"] == "2030-01-31T00:00:00+00:00" and view["rotated"] is None  # type: ignore[index]
    assert view["last_used"] is None and view["fingerprint"].startswith("hmac:")  # type: ignore[index]
    assert "fingerprint:" in ok(initialised.invoke(main, ["show", "gh"])).output


def test_rotate_replaces_the_secret_and_refuses_the_same_one(initialised: CliRunner, home: Path) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input=KEY))
    same = initialised.invoke(main, ["rotate", "svc", "--secret-stdin"], input=KEY)
    assert same.exit_code == 1 and "same as the current one" in same.output
    rotated = as_json(initialised.invoke(main, ["rotate", "svc", "--secret-stdin", "--json"], input=NEW_KEY))
    assert rotated["rotated"] is not None and rotated["fingerprint"] != rotated["previous"]  # type: ignore[index]
    with Vault.open(home) as vault:
        assert vault.secret("svc").reveal() == NEW_KEY


def test_edit_changes_only_the_given_fields(initialised: CliRunner) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--reveal", "never", "--secret-stdin"], input=KEY))
    view = as_json(
        initialised.invoke(
            main, ["edit", "svc", "--method", "get", "--path-prefix", "/v1/", "--host", "b.test", "--json"]
        )
    )
    assert view["methods"] == ["GET"] and view["path_prefixes"] == ["/v1"] and view["hosts"] == ["b.test"]  # type: ignore[index]
    assert view["reveal"] == "never"  # type: ignore[index]
    cleared = as_json(initialised.invoke(main, ["edit", "svc", "--any-method", "--json"]))
    assert cleared["methods"] == [] and cleared["path_prefixes"] == ["/v1"]  # type: ignore[index]


def test_remove_asks_unless_yes_and_refuses_without_a_terminal(initialised: CliRunner) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input=KEY))
    refused = initialised.invoke(main, ["remove", "svc"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert len(as_json(initialised.invoke(main, ["list", "--json"]))) == 1  # type: ignore[arg-type]
    assert as_json(initialised.invoke(main, ["remove", "svc", "--yes", "--json"])) == {"removed": "svc"}


def test_export_then_import_recreates_definitions_without_secrets(
    initialised: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(initialised.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY))
    query_args = ["--auth", "query", "--query", "k", "--method", "GET", "--path-prefix", "/v1", "--secret-stdin"]
    ok(initialised.invoke(main, ["add", "my.api", "--host", "*.x.test", *query_args], input=NEW_KEY))
    exported = ok(initialised.invoke(main, ["export"])).stdout
    assert KEY not in exported and "fingerprint" not in exported
    assert sorted(as_json(initialised.invoke(main, ["export", "--json"]))["services"]) == ["claude", "my.api"]  # type: ignore[index]
    before = as_json(initialised.invoke(main, ["list", "--json"]))
    (tmp_path / "services.toml").write_text(exported)

    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(initialised.invoke(main, ["init"]))
    missing = initialised.invoke(main, ["import", str(tmp_path / "services.toml")])
    assert missing.exit_code == 2 and "CLAVIS_SECRET_CLAUDE" in missing.output
    assert as_json(initialised.invoke(main, ["list", "--json"])) == []
    monkeypatch.setenv("CLAVIS_SECRET_CLAUDE", KEY)
    monkeypatch.setenv("CLAVIS_SECRET_MY_API", NEW_KEY)
    ok(initialised.invoke(main, ["import", str(tmp_path / "services.toml")]))
    after = as_json(initialised.invoke(main, ["list", "--json"]))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "created"} for r in rows]  # noqa: E731
    assert strip(after) == strip(before)  # type: ignore[arg-type]


def test_import_of_a_bad_definition_adds_nothing(initialised: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[services.good]\nhosts = ["g.test"]\n[services.bad]\nhosts = ["*.com"]\n')
    result = initialised.invoke(main, ["import", str(path)])
    assert result.exit_code == 1 and "service 'bad'" in result.output
    assert as_json(initialised.invoke(main, ["list", "--json"])) == []


def test_rekey_moves_to_a_passphrase_and_back_without_reentering_secrets(
    initialised: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input=KEY))
    monkeypatch.setenv("CLAVIS_NEW_PASSPHRASE", PASSPHRASE)
    moved = as_json(initialised.invoke(main, ["rekey", "--key-store", "passphrase", "--json"]))
    assert moved == {"key_store": "passphrase", "key_store_detail": moved["key_store_detail"], "previous": "keyfile"}  # type: ignore[index]
    assert not (home / "vault.key").exists()
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)
    ok(initialised.invoke(main, ["rekey", "--key-store", "keyfile"]))
    monkeypatch.delenv(ENV_VAR)
    with Vault.open(home) as vault:
        assert vault.secret("svc").reveal() == KEY


def test_sensitive_actions_are_audited_without_secrets(
    initialised: CliRunner, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input=KEY))
    ok(initialised.invoke(main, ["rotate", "svc", "--secret-stdin"], input=NEW_KEY))
    ok(initialised.invoke(main, ["edit", "svc", "--reveal", "full"]))
    monkeypatch.setenv("CLAVIS_NEW_PASSPHRASE", PASSPHRASE)
    ok(initialised.invoke(main, ["rekey", "--key-store", "passphrase"]))
    monkeypatch.setenv(ENV_VAR, PASSPHRASE)
    ok(initialised.invoke(main, ["remove", "svc", "--yes"]))
    with Vault.open(home) as vault:
        records = list(AuditLog.for_vault(vault).records())
    assert [r.get("action") for r in records] == ["add", "rotate", "edit", "rekey", "remove"]
    assert all(r["source"] == "cli" for r in records)
    text = (home / "audit.jsonl").read_text() + json.dumps(records)
    assert KEY not in text and NEW_KEY not in text and PASSPHRASE not in text


def test_connectors_lists_the_catalog(initialised: CliRunner) -> None:
    rows = as_json(initialised.invoke(main, ["connectors", "--json"]))
    assert {"openai", "anthropic", "stripe", "generic"} <= {r["name"] for r in rows}  # type: ignore[union-attr]


def test_init_in_a_subprocess_never_prompts_without_a_terminal(tmp_path: Path) -> None:
    env = {**os.environ, "CLAVIS_HOME": str(tmp_path / "h"), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    result = subprocess.run(
        [EXE, "init"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "key store: key file" in result.stdout and "warning:" in result.stderr


def test_init_defaults_to_a_working_keychain(tmp_path: Path) -> None:
    assert shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon"), "run scripts/ensure-system-deps"
    (tmp_path / "user").mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "user"), "CLAVIS_HOME": str(tmp_path / "h")}
    script = (
        f"echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec '{EXE}' init --json"
    )
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key_store"] == "keychain" and "warning" not in result.stderr


def test_show_reports_the_last_injection_from_the_audit_log(initialised: CliRunner, home: Path) -> None:
    ok(initialised.invoke(main, ["add", "svc", "--host", "a.test", "--secret-stdin"], input=KEY))
    with Vault.open(home) as vault:
        log = AuditLog.for_vault(vault)
        log.append(source="mcp", service="svc", method="GET", host="a.test", decision="injected", status=200)
        log.append(source="mcp", service="svc", method="GET", host="a.test", decision="refused", status=403)
        injected = [r["time"] for r in log.records() if r.get("decision") == "injected"]
    assert as_json(initialised.invoke(main, ["show", "svc", "--json"]))["last_used"] == injected[-1]  # type: ignore[index]


def test_init_refuses_to_start_a_vault_beside_the_audit_trail_of_one_that_is_gone(
    initialised: CliRunner, home: Path
) -> None:
    ok(initialised.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY))
    for name in ("vault.db", "vault.db-wal", "vault.db-shm"):
        (home / name).unlink(missing_ok=True)
    refused = initialised.invoke(main, ["init"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "audit trail of an earlier vault" in refused.output and "--archive-old-audit" in refused.output
    assert not (home / "vault.db").exists()
    trail = (home / "audit.jsonl").read_bytes()
    ok(initialised.invoke(main, ["init", "--archive-old-audit"]))
    [archived] = home.glob("audit-archive-*")
    assert (archived / "audit.jsonl").read_bytes() == trail  # kept, not lost
    assert ok(initialised.invoke(main, ["audit", "verify"])).stdout.startswith("OK: 0 records")


def test_init_where_clavis_home_is_a_file_says_so(runner: CliRunner, home: Path) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")
    result = runner.invoke(main, ["init"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "is a file, not a folder" in result.output


def test_import_of_a_file_that_never_ends_is_refused_at_a_bound(initialised: CliRunner) -> None:
    result = initialised.invoke(main, ["import", "/dev/zero"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "larger than 16 MiB (or never ends" in result.output


def test_export_then_import_carries_write_confirmations_approvals_probes_and_budgets(
    initialised: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clavis_mcp.vault.limits.budget import budget_of
    from clavis_mcp.vault.policy import load_policy, set_approvals

    ok(initialised.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY))
    ok(initialised.invoke(main, ["mcp-settings", "claude", "--confirm-writes", "--probe", "GET /v1/models"]))
    ok(initialised.invoke(main, ["budget", "claude", "--max-requests", "5", "--per", "15m"]))
    with Vault.open(Path(os.environ["CLAVIS_HOME"])) as vault:
        set_approvals(vault, "claude", "all", agent="ci-bot")
        policy, budget = load_policy(vault, "claude"), budget_of(vault, "claude")
    exported = ok(initialised.invoke(main, ["export"])).stdout
    (tmp_path / "services.toml").write_text(exported)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(initialised.invoke(main, ["init"]))
    monkeypatch.setenv("CLAVIS_SECRET_CLAUDE", KEY)
    ok(initialised.invoke(main, ["import", str(tmp_path / "services.toml")]))
    with Vault.open(tmp_path / "second") as vault:
        assert load_policy(vault, "claude") == policy and policy.confirm_writes and policy.agent_approvals
        assert budget_of(vault, "claude") == budget and budget is not None


def test_import_of_a_bad_policy_or_budget_adds_nothing(initialised: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[services.good]\nhosts = ["g.test"]\n[services.good.budget]\nmax_requests = 0\n')
    result = initialised.invoke(main, ["import", str(path)])
    assert result.exit_code == 1 and "service 'good'" in result.output and "budget" in result.output
    assert as_json(initialised.invoke(main, ["list", "--json"])) == []


def test_export_with_secrets_round_trips_them_encrypted_under_a_passphrase(
    initialised: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(initialised.invoke(main, ["add", "claude", "--connector", "anthropic", "--secret-stdin"], input=KEY))
    before = as_json(initialised.invoke(main, ["show", "claude", "--json"]))
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", PASSPHRASE)
    exported = ok(initialised.invoke(main, ["export", "--with-secrets"])).stdout
    assert KEY not in exported and "[secrets]" in exported
    plain = ok(initialised.invoke(main, ["export"])).stdout
    assert "[secrets]" not in plain  # only with the flag
    (tmp_path / "all.toml").write_text(exported)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(initialised.invoke(main, ["init"]))
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", "not the passphrase")
    wrong = initialised.invoke(main, ["import", str(tmp_path / "all.toml")])
    assert wrong.exit_code == 1 and "do not open with this passphrase" in wrong.output
    assert as_json(initialised.invoke(main, ["list", "--json"])) == []
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", PASSPHRASE)
    ok(initialised.invoke(main, ["import", str(tmp_path / "all.toml")]))  # no CLAVIS_SECRET_CLAUDE needed
    after = as_json(initialised.invoke(main, ["show", "claude", "--json"]))
    assert after["fingerprint"] != "(not stored)"  # type: ignore[index]
    with Vault.open(tmp_path / "second") as vault:
        assert vault.secret("claude").reveal() == KEY
    assert before["hosts"] == after["hosts"]  # type: ignore[index]


def test_an_oauth_service_round_trips_with_its_tokens_only_when_the_secrets_go_too(
    initialised: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clavis_mcp.vault import Secret
    from clavis_mcp.vault.oauth import state as oauth_store
    from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
    from tests.conftest import make_service

    config = OAuthConfig("https://auth.example.test/token", "client-1", "refresh_token", ("read",),
                         "https://auth.example.test/authorize")  # fmt: skip
    grant = TokenGrant(Secret("at-" + KEY), 4102444800.0, Secret("rt-" + NEW_KEY), None)
    with Vault.open(Path(os.environ["CLAVIS_HOME"])) as vault:
        oauth_store.register(vault, make_service("acme", "api.acme.test"), config, Secret("cs-" + KEY), grant)
        before = oauth_store.load(vault, "acme")
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", PASSPHRASE)
    (tmp_path / "plain.toml").write_text(ok(initialised.invoke(main, ["export"])).stdout)
    (tmp_path / "all.toml").write_text(ok(initialised.invoke(main, ["export", "--with-secrets"])).stdout)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(initialised.invoke(main, ["init"]))
    refused = initialised.invoke(main, ["import", str(tmp_path / "plain.toml")])
    assert (
        refused.exit_code == 1 and "'acme' is an OAuth service" in refused.output and "--with-secrets" in refused.output
    )
    ok(initialised.invoke(main, ["import", str(tmp_path / "all.toml")]))
    with Vault.open(tmp_path / "second") as vault:
        after = oauth_store.load(vault, "acme")
        assert after is not None and before is not None
        assert after.config == before.config and after.expires_at == before.expires_at
        assert oauth_store.access_token(vault, "acme").reveal() == "at-" + KEY  # type: ignore[union-attr]
        assert oauth_store.refresh_token(vault, "acme").reveal() == "rt-" + NEW_KEY  # type: ignore[union-attr]
        assert oauth_store.client_secret(vault, "acme").reveal() == "cs-" + KEY  # type: ignore[union-attr]
