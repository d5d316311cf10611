"""The CLI keeps a secret where the user already keeps it: ``add --secret-ref`` / ``--field-ref``
store the reference (never a value), ``show`` and ``list`` say where each secret lives, a
reference carrying a credential is refused, ``rotate --secret-ref`` repoints it, and ``doctor``
says whether each reference resolves without printing the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault, clavis_home
from clavis_mcp.vault.refs import MARKER
from tests.cli.test_doctor import config as config  # noqa: F401  # the doctor's fixture, reused
from tests.cli.test_doctor import doctor

VALUE = "sk-cli-ref-value-Rt5Yh8Uj2Ik9Ol3Pz"
KEY_ID = "AKIACLIREFREFREF0077"


@pytest.fixture
def runner(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("REF_CLI_KEY", VALUE)
    runner = CliRunner()
    ok(runner.invoke(main, ["init"]))
    return runner


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert VALUE not in result.output and KEY_ID not in result.output
    return result


def fails(result: Result, *phrases: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert all(phrase in result.output for phrase in phrases), result.output


def test_add_with_a_secret_ref_stores_the_reference_and_show_and_list_say_where(runner: CliRunner) -> None:
    added = ok(runner.invoke(main, ["add", "openai", "--connector", "openai", "--secret-ref", "env://REF_CLI_KEY"]))
    assert "credential kept at: env://REF_CLI_KEY" in added.output
    shown = json.loads(ok(runner.invoke(main, ["show", "openai", "--json"])).output)
    assert shown["secret_location"] == {"credential": "env://REF_CLI_KEY"}
    assert shown["fingerprint"] == "(reference)"
    assert "env://REF_CLI_KEY" in ok(runner.invoke(main, ["list"])).output
    with Vault.open(clavis_home()) as vault:
        assert vault.secret("openai").reveal() == MARKER + "env://REF_CLI_KEY"  # the reference, not the value


def test_a_field_by_reference_beside_a_stored_credential(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SK", "aws-secret-stored-in-the-vault-0123456789")
    ok(runner.invoke(main, ["add", "aws", "--connector", "aws", "--host", "s3.eu-west-1.amazonaws.com",
                            "--secret-env", "SK", "--field-ref", "access_key_id=bao://secret/aws#key_id",
                            "--field-ref", "session_token=env://AWS_SESSION_TOKEN"]))  # fmt: skip
    shown = json.loads(ok(runner.invoke(main, ["show", "aws", "--json"])).output)
    assert shown["secret_location"] == {"credential": "vault", "access_key_id": "bao://secret/aws#key_id",
                                        "session_token": "env://AWS_SESSION_TOKEN"}  # fmt: skip
    assert shown["field_fingerprints"]["access_key_id"] == "(reference)"
    assert shown["field_fingerprints"]["credential"].startswith("hmac:")


@pytest.mark.parametrize(
    ("ref", "phrase"),
    [
        ("bao://root:s.hvs123@secret/openai#key", "must not carry a credential"),
        ("aws-sm://prod/openai?token=abc", "must not carry a credential"),
        ("ftp://example/openai", "unknown secret reference scheme"),
        ("op://Private/OpenAI", "op://VAULT/ITEM/FIELD"),
        ("bao://secret/openai", "bao://MOUNT/PATH#FIELD"),
        ("env://NOT A VAR", "one environment variable"),
        ("file://relative/path", "absolute path"),
    ],
    ids=["userinfo-token", "query-token", "unknown-scheme", "op-short", "bao-no-field", "env-bad", "file-relative"],
)
def test_a_bad_reference_is_one_clear_line(runner: CliRunner, ref: str, phrase: str) -> None:
    result = runner.invoke(main, ["add", "x", "--host", "api.x.test", "--secret-ref", ref])
    fails(result, phrase)
    assert "s.hvs123" not in result.output.replace(ref, "")  # named only inside the reference the user typed
    ok(runner.invoke(main, ["list"]))
    assert "x " not in runner.invoke(main, ["list"]).output


def test_secret_ref_and_secret_env_together_are_refused(runner: CliRunner) -> None:
    fails(runner.invoke(main, ["add", "x", "--host", "api.x.test", "--secret-ref", "env://REF_CLI_KEY",
                               "--secret-env", "REF_CLI_KEY"]), "give one")  # fmt: skip


def test_rotate_repoints_the_reference_and_a_typed_secret_replaces_it(runner: CliRunner) -> None:
    ok(runner.invoke(main, ["add", "svc", "--host", "api.svc.test", "--secret-ref", "env://REF_CLI_KEY"]))
    ok(runner.invoke(main, ["rotate", "svc", "--secret-ref", "file:///run/secrets/svc"]))
    shown = json.loads(ok(runner.invoke(main, ["show", "svc", "--json"])).output)
    assert shown["secret_location"] == {"credential": "file:///run/secrets/svc"}
    ok(runner.invoke(main, ["rotate", "svc", "--secret-env", "REF_CLI_KEY"]))
    shown = json.loads(ok(runner.invoke(main, ["show", "svc", "--json"])).output)
    assert shown["secret_location"] == {"credential": "vault"} and shown["fingerprint"].startswith("hmac:")


@pytest.mark.e2e
def test_doctor_says_which_references_resolve_without_printing_them(
    config: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REF_CLI_KEY", VALUE)
    monkeypatch.delenv("REF_CLI_GONE", raising=False)
    runner = CliRunner()
    ok(runner.invoke(main, ["add", "good", "--host", "api.good.test", "--secret-ref", "env://REF_CLI_KEY"]))
    ok(runner.invoke(main, ["add", "gone", "--host", "api.gone.test", "--secret-ref", "env://REF_CLI_GONE"]))
    code, checks = doctor(config)
    assert checks["service good credential"]["ok"] is True
    assert checks["service good credential"]["detail"] == "env://REF_CLI_KEY resolves"
    gone = checks["service gone credential"]
    assert code == 1 and gone["ok"] is False and "REF_CLI_GONE is not set" in gone["detail"]
    assert "--secret-ref" in gone["fix"] and VALUE not in json.dumps(checks)


def test_export_writes_the_references_and_import_keeps_them_by_reference(runner: CliRunner, tmp_path: Path) -> None:
    ok(runner.invoke(main, ["add", "svc", "--host", "api.svc.test", "--secret-ref", "env://REF_CLI_KEY"]))
    exported = tmp_path / "services.toml"
    ok(runner.invoke(main, ["export", "-o", str(exported)]))
    assert 'credential = "env://REF_CLI_KEY"' in exported.read_text()
    ok(runner.invoke(main, ["remove", "svc", "--yes"]))
    imported = ok(runner.invoke(main, ["import", str(exported)]))  # no CLAVIS_SECRET_SVC needed
    assert "imported svc (secret at env://REF_CLI_KEY)" in imported.output
    shown = json.loads(ok(runner.invoke(main, ["show", "svc", "--json"])).output)
    assert shown["secret_location"] == {"credential": "env://REF_CLI_KEY"}


def test_an_imported_reference_with_a_credential_in_it_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[services.svc]\nhosts = ["api.svc.test"]\n'
                    '[services.svc.secret_refs]\ncredential = "bao://root:hvs.x@secret/a#k"\n')  # fmt: skip
    fails(runner.invoke(main, ["import", str(path)]), "service 'svc'", "must not carry a credential")
