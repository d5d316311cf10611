"""The CLI builds every auth method: options per method, other secret fields from the environment
(no terminal here, as in scripts and CI), show and list describe them without a secret, rotate
replaces one field, export and import carry them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault

SECRET_KEY = "aws-secret-access-key-cli-0123456789ABCD"
KEY_ID = "AKIACLICLICLICLI0042"
TOKEN = "session-token-for-cli-tests-0123456789"
APP_ID = "app-id-cli-secret-77Qz"
NEW_KEY_ID = "AKIANEWNEWNEWNEW0043"
SECRETS = (SECRET_KEY, KEY_ID, TOKEN, APP_ID, NEW_KEY_ID)


@pytest.fixture
def runner(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    for name, value in (("SK", SECRET_KEY), ("KID", KEY_ID), ("TOK", TOKEN), ("APP", APP_ID), ("NEWKID", NEW_KEY_ID)):
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    ok(runner.invoke(main, ["init"]))
    return runner


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert not any(secret in result.output for secret in SECRETS)
    return result


def fails(result: Result, *phrases: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert all(phrase in result.output for phrase in phrases), result.output
    assert not any(secret in result.output for secret in SECRETS)


AWS = ["add", "aws", "--connector", "aws", "--host", "s3.eu-west-1.amazonaws.com", "--secret-env", "SK",
       "--field-env", "access_key_id=KID", "--field-env", "session_token=TOK"]  # fmt: skip


def test_an_aws_service_stores_three_fields_and_shows_only_their_fingerprints(runner: CliRunner, home: Path) -> None:
    added = json.loads(ok(runner.invoke(main, [*AWS, "--json"])).stdout)
    assert set(added["fields"]) == {"access_key_id", "session_token"}
    shown = json.loads(ok(runner.invoke(main, ["show", "aws", "--json"])).stdout)
    assert shown["auth"].startswith("AWS SigV4") and shown["secret_fields"] == [
        "credential", "access_key_id", "session_token"]  # fmt: skip
    assert set(shown["field_fingerprints"]) == {"credential", "access_key_id", "session_token"}
    assert "(not stored)" not in shown["field_fingerprints"].values()
    listed = json.loads(ok(runner.invoke(main, ["list", "--json"])).stdout)
    assert listed[0]["hosts"] == ["s3.eu-west-1.amazonaws.com"]
    with Vault.open(home) as vault:
        assert vault.secret("aws", "access_key_id").reveal() == KEY_ID
        assert vault.secret("aws", "session_token").reveal() == TOKEN


def test_a_required_field_missing_without_a_terminal_says_how_to_give_it_and_stores_nothing(
    runner: CliRunner,
) -> None:
    fails(runner.invoke(main, ["add", "aws", "--connector", "aws", "--secret-env", "SK"]),
          "access_key_id", "--field-env access_key_id=VAR")  # fmt: skip
    assert json.loads(ok(runner.invoke(main, ["list", "--json"])).stdout) == []


def test_an_optional_field_may_be_left_out(runner: CliRunner) -> None:
    ok(
        runner.invoke(
            main, ["add", "aws", "--connector", "aws", "--secret-env", "SK", "--field-env", "access_key_id=KID"]
        )
    )
    shown = json.loads(ok(runner.invoke(main, ["show", "aws", "--json"])).stdout)
    assert shown["field_fingerprints"]["session_token"] == "(not stored)"


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["--host", "api.x.example", "--auth", "header", "--header", "X-K: {secret}", "--aws-region", "eu-west-1"],
         ["--aws-region goes with --auth sigv4"]),
        (["--host", "api.x.example", "--auth", "header", "--header", "A: {secret}", "--header", "B: {b}"],
         ["--auth headers"]),
        (["--host", "api.x.example", "--auth", "body"], ["--body-field"]),
        (["--host", "api.x.example", "--auth", "path", "--path-template", "/bot"], ["{secret}"]),
        (["--host", "api.x.example", "--auth", "bearer", "--field-env", "app_id=APP"], ["no secret field app_id"]),
        (["--host", "api.x.example", "--auth", "hmac", "--hmac-parts", "method,secret"], ["unknown HMAC"]),
    ],
    ids=["option-of-another-method", "two-headers-for-one", "body-without-field", "path-without-secret",
         "field-the-method-does-not-use", "hmac-unknown-part"],
)  # fmt: skip
def test_options_that_do_not_fit_the_method_are_refused(runner: CliRunner, args: list[str], phrases: list[str]) -> None:
    fails(runner.invoke(main, ["add", "svc", *args, "--secret-env", "SK"]), *phrases)


def test_rotate_replaces_one_field(runner: CliRunner, home: Path) -> None:
    ok(runner.invoke(main, AWS))
    before = json.loads(ok(runner.invoke(main, ["show", "aws", "--json"])).stdout)["field_fingerprints"]
    rotated = json.loads(ok(runner.invoke(main, ["rotate", "aws", "--field", "access_key_id", "--secret-env",
                                                 "NEWKID", "--json"])).stdout)  # fmt: skip
    assert rotated["previous"] == before["access_key_id"] != rotated["fingerprint"]
    after = json.loads(ok(runner.invoke(main, ["show", "aws", "--json"])).stdout)["field_fingerprints"]
    assert after["credential"] == before["credential"] and after["access_key_id"] == rotated["fingerprint"]
    with Vault.open(home) as vault:
        assert vault.secret("aws", "access_key_id").reveal() == NEW_KEY_ID
    fails(runner.invoke(main, ["rotate", "aws", "--field", "app_id", "--secret-env", "APP"]), "no secret field")


def test_edit_to_a_method_whose_fields_are_not_stored_is_refused(runner: CliRunner) -> None:
    ok(runner.invoke(main, ["add", "jira", "--host", "acme.example", "--auth", "basic", "--secret-env", "SK"]))
    fails(runner.invoke(main, ["edit", "jira", "--auth", "basic", "--basic", "{username}:{secret}"]), "username")


def test_export_and_import_carry_each_method_and_its_fields(
    runner: CliRunner, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(runner.invoke(main, AWS + ["--aws-region", "eu-west-1", "--aws-service", "s3", "--unsigned-payload"]))
    ok(runner.invoke(main, ["add", "maps", "--host", "api.maps.example", "--auth", "headers", "--header",
                            "X-Api-Key: {secret}", "--header", "X-App-Id: {app_id}", "--secret-env", "SK",
                            "--field-env", "app_id=APP"]))  # fmt: skip
    ok(runner.invoke(main, ["add", "signed", "--host", "api.signed.example", "--auth", "hmac", "--hmac-template",
                            "t={timestamp},v1={signature}", "--hmac-parts", "timestamp,body", "--hmac-separator", ".",
                            "--hmac-timestamp-header", "", "--secret-env", "SK"]))  # fmt: skip
    ok(runner.invoke(main, ["add", "search", "--host", "api.search.example", "--auth", "body", "--body-field",
                            "api_key", "--body-format", "form", "--secret-env", "SK"]))  # fmt: skip
    ok(runner.invoke(main, ["add", "bot", "--connector", "telegram", "--secret-env", "SK"]))
    exported = tmp_path / "services.toml"
    ok(runner.invoke(main, ["export", "-o", str(exported)]))
    with Vault.open(home) as vault:
        before = {s.name: s.auth for s in vault.list_services()}
    for name in before:
        ok(runner.invoke(main, ["remove", name, "--yes"]))
    for name in before:
        monkeypatch.setenv(f"CLAVIS_SECRET_{name.upper()}", SECRET_KEY)
    monkeypatch.setenv("CLAVIS_SECRET_AWS__ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("CLAVIS_SECRET_MAPS__APP_ID", APP_ID)
    ok(runner.invoke(main, ["import", str(exported)]))
    with Vault.open(home) as vault:
        assert {s.name: s.auth for s in vault.list_services()} == before
        assert vault.secret("maps", "app_id").reveal() == APP_ID
        assert vault.secret("aws", "access_key_id").reveal() == KEY_ID


def test_the_catalog_lists_the_aws_and_telegram_connectors(runner: CliRunner) -> None:
    rows = {row["name"]: row for row in json.loads(ok(runner.invoke(main, ["connectors", "--json"])).stdout)}
    assert rows["aws"]["auth"].startswith("AWS SigV4") and rows["aws"]["hosts"] == ["sts.amazonaws.com"]
    assert rows["telegram"]["auth"] == "key in the path /bot{secret}/"


def test_a_github_app_is_added_from_its_key_file(runner: CliRunner, home: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "app.private-key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))  # fmt: skip
    added = json.loads(ok(runner.invoke(main, ["add", "gh", "--connector", "github", "--auth", "github-app",
                                               "--app-id", "123", "--installation-id", "42",
                                               "--private-key-file", str(pem), "--json"])).stdout)  # fmt: skip
    assert added["auth"] == "GitHub App 123, installation 42: bearer installation token"
    assert added["hosts"] == ["api.github.com"] and "BEGIN" not in json.dumps(added)
    shown = json.loads(ok(runner.invoke(main, ["show", "gh", "--json"])).stdout)
    assert shown["field_fingerprints"]["installation_token"] == "(not stored)"  # exchanged on first use
    fails(runner.invoke(main, ["add", "other", "--host", "x.example", "--auth", "bearer", "--private-key-file",
                               str(pem)]), "--private-key-file goes with --auth github-app")  # fmt: skip
