"""Attacks on what the masked view and the fingerprint give away (issue 12, point 6).

The attacker reads what get_credentials, ``clavis-mcp show`` or a log line print: a masked
view and a fingerprint. Neither may narrow a guess at the key much, nor confirm a guess offline.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from clavis_mcp.vault import Secret, Vault, validate_secret
from tests.conftest import make_service

EXE = str(Path(sys.executable).parent / "clavis-mcp")
WEBHOOK_KEY = "webhook-5e1da9c0"  # 16 characters; the old view showed "webhook-…a9c0", hiding only "5e1d"
LONG_KEY = "sk-proj-Qm9vZ2xlLWtleS1mb3ItdGhlLXRlc3Rz"
PREFIXES = ["", "sk-", "sk-proj-", "sk-ant-api03-", "ghp_", "github_pat_", "xoxb-", "sk_live_", "webhook-"]
ALPHABETS = [string.hexdigits.lower(), string.ascii_letters + string.digits, string.ascii_letters + "-_", "é€☃𝔘", "*…"]


def brute_force(masked: str, fingerprint: str, length: int, alphabet: str) -> str | None:
    """The attack from the issue: fill in the characters the masked view hides and confirm each
    guess against the fingerprint as a plain SHA-256 of the value. Gives up beyond 4 unknowns."""
    shown_prefix, _, shown_suffix = masked.partition("…")
    shown_suffix = shown_suffix.strip("*")
    hidden = length - len(shown_prefix) - len(shown_suffix)
    digest = fingerprint.partition(":")[2]
    if hidden > 4 or not digest:
        return None
    for middle in itertools.product(alphabet, repeat=hidden):
        guess = shown_prefix + "".join(middle) + shown_suffix
        if hashlib.sha256(guess.encode()).hexdigest().startswith(digest):
            return guess
    return None


def revealed_positions(value: str) -> list[int]:
    """The positions of ``value`` the masked view depends on: changing one changes the view."""
    view = Secret(value).masked()
    changed = (value[:i] + ("a" if c != "a" else "b") + value[i + 1 :] for i, c in enumerate(value))
    return [i for i, other in enumerate(changed) if Secret(other).masked() != view]


def unkeyed_digests(value: str) -> list[str]:
    data = value.encode()
    return [hashlib.new(name, data).hexdigest()[:8] for name in ("md5", "sha1", "sha256", "sha512", "sha3_256")] + [
        hashlib.blake2b(data).hexdigest()[:8]
    ]


def test_short_key_is_not_recovered_from_its_masked_view_and_fingerprint(vault: Vault) -> None:
    vault.add_service(make_service("hook", "hooks.example.test"), validate_secret(WEBHOOK_KEY))
    secret = vault.secret("hook")
    assert brute_force(secret.masked(), secret.fingerprint, len(WEBHOOK_KEY), string.hexdigits.lower()) is None


@pytest.mark.parametrize(
    "value",
    ["x", "hunter2", WEBHOOK_KEY, "sk-" + "a1b2c3d4e5f6g7h8", "ghp_0123456789abcdefXYZ", "p" * 23],
    ids=["one-char", "password", "16-char-key", "sk-19-chars", "ghp-23-chars", "23-chars"],
)
def test_masked_view_of_a_short_key_reveals_nothing(value: str) -> None:
    assert revealed_positions(value) == []
    assert Secret(value).masked() == Secret("z").masked()  # not even the length


@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.sampled_from(ALPHABETS).flatmap(lambda alphabet: st.text(alphabet, min_size=1, max_size=120)),
)
def test_masked_view_reveals_at_most_four_characters(prefix: str, body: str) -> None:
    value = prefix + body
    allowed = 0 if len(value) < 24 else min(4, len(value) // 6)
    assert len(revealed_positions(value)) <= allowed


def test_fingerprint_is_no_offline_oracle(home: Path, tmp_path: Path) -> None:
    with Vault.create(home) as first, Vault.create(tmp_path / "other") as second:
        for vault in (first, second):
            vault.add_service(make_service("svc", "api.example.test"), validate_secret(LONG_KEY))
        in_first, in_second = first.secret("svc").fingerprint, second.secret("svc").fingerprint
    assert in_first != in_second  # the same value in another vault: another fingerprint
    for fingerprint in (in_first, in_second, Secret(LONG_KEY).fingerprint):
        assert not any(digest in fingerprint for digest in unkeyed_digests(LONG_KEY)), fingerprint
    outside = subprocess.run(
        [sys.executable, "-c", f"from clavis_mcp.vault import Secret; print(Secret({LONG_KEY!r}).fingerprint)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert outside not in (in_first, in_second, Secret(LONG_KEY).fingerprint)  # no vault key, no shared answer


def cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([EXE, *args], input=stdin, capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.anyio
async def test_fingerprint_is_stable_across_processes_of_one_vault(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")  # a key file, not a real keychain
    cli("init")
    added = json.loads(cli("add", "svc", "--host", "api.example.test", "--secret-stdin", "--json", stdin=LONG_KEY))
    shown = json.loads(cli("show", "svc", "--json"))
    params = StdioServerParameters(command=EXE, args=[], env=dict(os.environ))
    with (home.parent / "mcp-stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            got = (await client.call_tool("get_credentials", {"service_name": "svc"})).structured_content
    with Vault.open(home) as vault:
        here = vault.secret("svc").fingerprint
    assert added["fingerprint"] == shown["fingerprint"] == got["fingerprint"] == here
    assert not any(digest in here for digest in unkeyed_digests(LONG_KEY))
    assert got["masked"] == "…" + LONG_KEY[-4:]
