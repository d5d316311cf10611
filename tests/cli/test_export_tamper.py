"""An `export --with-secrets` file edited without the passphrase imports nothing.

The sealed secrets are bound to every service's definition: changing the hosts, ``reveal``,
``local`` or adding a ``secret_refs`` entry would otherwise send the real secret (or one of the
importer's own) to the editor's server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.vault import Vault
from tests.cli.test_vault_cli import KEY, PASSPHRASE, ok

ENV_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def runner(home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.setenv("CLAVIS_EXPORT_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    runner = CliRunner()
    ok(runner.invoke(main, ["init"]))
    args = ["add", "github", "--host", "api.github.com", "--auth", "bearer", "--secret-stdin"]
    ok(runner.invoke(main, args, input=KEY))
    return runner


def _export_then_move(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The exported document, parsed; CLAVIS_HOME then points at a fresh, empty vault."""
    document = tomllib.loads(ok(runner.invoke(main, ["export", "--with-secrets"])).stdout)
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(runner.invoke(main, ["init"]))
    return document


def _services(runner: CliRunner) -> list[Any]:
    return json.loads(ok(runner.invoke(main, ["list", "--json"])).stdout)  # type: ignore[no-any-return]


def _hosts(table: dict[str, Any]) -> None:
    table["hosts"] = ["evil.attacker.test"]


def _reveal(table: dict[str, Any]) -> None:
    table["reveal"] = "full"


def _local(table: dict[str, Any]) -> None:
    table["local"] = True


def _secret_refs(table: dict[str, Any]) -> None:
    table["secret_refs"] = {"credential": "env://AWS_SECRET_ACCESS_KEY"}


def _budget(table: dict[str, Any]) -> None:
    table["budget"] = {"max_requests": 100000, "per": "1d"}


@pytest.mark.parametrize(
    "tamper", [_hosts, _reveal, _local, _secret_refs, _budget], ids=lambda f: f.__name__.strip("_")
)
def test_an_edited_definition_imports_nothing(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: Callable[[dict[str, Any]], None]
) -> None:
    document = _export_then_move(runner, tmp_path, monkeypatch)
    tamper(document["services"]["github"])
    (tmp_path / "edited.toml").write_text(tomli_w.dumps(document))
    refused = runner.invoke(main, ["import", str(tmp_path / "edited.toml")])
    assert refused.exit_code == 1 and "nothing was imported" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    assert _services(runner) == []


def test_a_service_added_beside_the_sealed_ones_imports_nothing(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _export_then_move(runner, tmp_path, monkeypatch)
    document["services"]["mirror"] = {**document["services"]["github"], "hosts": ["evil.attacker.test"]}
    _secret_refs(document["services"]["mirror"])
    (tmp_path / "edited.toml").write_text(tomli_w.dumps(document))
    refused = runner.invoke(main, ["import", str(tmp_path / "edited.toml")])
    assert refused.exit_code == 1 and "nothing was imported" in refused.output
    assert _services(runner) == []


def test_the_untouched_export_still_round_trips_under_the_stronger_kdf(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _export_then_move(runner, tmp_path, monkeypatch)
    assert document["secrets"]["format"] == 2 and document["secrets"]["n"] == 2**17
    (tmp_path / "all.toml").write_text(tomli_w.dumps(document))
    ok(runner.invoke(main, ["import", str(tmp_path / "all.toml")]))
    with Vault.open(tmp_path / "second") as vault:
        assert vault.secret("github").reveal() == KEY
        assert [str(h) for h in vault.snapshot().service("github").hosts] == ["api.github.com"]


def _as_format_1(document: dict[str, Any]) -> dict[str, Any]:
    """The same secrets sealed as an export made before the definitions were bound."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = hashlib.scrypt(PASSPHRASE.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    values = json.dumps({"github": {"credential": KEY}}).encode()
    data = AESGCM(key).encrypt(nonce, values, b"clavis-mcp export secrets v1")
    coded = {name: base64.b64encode(raw).decode() for name, raw in (("salt", salt), ("nonce", nonce), ("data", data))}
    document["secrets"] = {"cipher": "AES-256-GCM", "kdf": "scrypt", "n": 2**14, "r": 8, "p": 1, **coded}
    return document


def test_an_older_export_still_opens_but_a_reference_never_replaces_a_sealed_value(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _as_format_1(_export_then_move(runner, tmp_path, monkeypatch))
    _secret_refs(document["services"]["github"])
    (tmp_path / "old-edited.toml").write_text(tomli_w.dumps(document))
    refused = runner.invoke(main, ["import", str(tmp_path / "old-edited.toml")])
    assert refused.exit_code == 1 and "secret_refs names credential" in refused.output
    assert _services(runner) == []
    del document["services"]["github"]["secret_refs"]
    (tmp_path / "old.toml").write_text(tomli_w.dumps(document))
    imported = ok(runner.invoke(main, ["import", str(tmp_path / "old.toml")]))
    assert "not sealed" in imported.stderr and "github: hosts api.github.com" in imported.stderr
    with Vault.open(tmp_path / "second") as vault:
        assert vault.secret("github").reveal() == KEY


def test_a_plain_import_shows_the_hosts_and_references_it_trusts(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = tomllib.loads(ok(runner.invoke(main, ["export"])).stdout)
    _secret_refs(document["services"]["github"])
    (tmp_path / "plain.toml").write_text(tomli_w.dumps(document))
    monkeypatch.setenv("CLAVIS_HOME", str(tmp_path / "second"))
    ok(runner.invoke(main, ["init"]))
    imported = ok(runner.invoke(main, ["import", str(tmp_path / "plain.toml")]))
    assert "github: hosts api.github.com; secret_refs credential=env://AWS_SECRET_ACCESS_KEY" in imported.stderr
    assert [s["name"] for s in _services(runner)] == ["github"]
