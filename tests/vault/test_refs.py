"""Secret references without the proxy: how they are written (a table of good and bad ones, each
bad one named for what it attempts), the memory cache's lifetime and its one resolution at a time,
the stored form, and the value kept out of every printable form."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.errors import InvalidSecretRef, SecretRefUnresolved
from clavis_mcp.vault.refs import MARKER, SCHEMES, parse, resolve_now, stored, stored_ref
from clavis_mcp.vault.refs.cache import RefCache, ttl_from_env

VALUE = "sk-unit-ref-value-Wq3Er5Ty7Ui9Op1As"

GOOD = [
    ("env://OPENAI_API_KEY", "env"),
    ("file:///run/secrets/openai", "file"),
    ("keyring://openai-desktop/me@example.com", "keyring"),
    ("bao://secret/apps/openai#key", "bao"),
    ("vault://kv/team/openai#api_key", "vault"),
    ("op://Private/OpenAI/credential", "op"),
    ("op://Private/OpenAI/section/credential", "op"),
    ("bw://openai#api_key", "bw"),
    ("bws://0f7c2b1e-8d3a-4c55-9e21-5a6b7c8d9e0f", "bws"),
    ("pass://api/openai", "pass"),
    ("gopass://websites/openai", "gopass"),
    ("aws-sm://prod/openai?region=eu-west-1#api_key", "aws-sm"),
    ("gcp-sm://my-project/openai-key", "gcp-sm"),
    ("gcp-sm://my-project/openai-key/3", "gcp-sm"),
]


@pytest.mark.parametrize(("text", "scheme"), GOOD, ids=[g[0].split(":")[0] + "-" + str(i) for i, g in enumerate(GOOD)])
def test_each_backend_reads_its_own_shape(text: str, scheme: str) -> None:
    ref = parse(text)
    assert ref.scheme == scheme and str(ref) == text


BAD = [
    ("userinfo-token", "bao://root:hvs.token@secret/x#k", "must not carry a credential"),
    ("query-token", "aws-sm://prod/x?token=abc", "must not carry a credential"),
    ("query-password", "op://V/I/F?password=abc", "must not carry a credential"),
    ("control-characters", "env://A\nB", "control characters"),
    ("unknown-scheme", "ldap://x/y", "unknown secret reference scheme"),
    ("not-a-reference", "sk-just-a-key", "is not a secret reference"),
    ("empty", "env://", "names nothing"),
    ("env-path", "env://../etc", "one environment variable"),
    ("file-relative", "file://run/secrets/x", "absolute path"),
    ("keyring-no-user", "keyring://service", "keyring://SERVICE/USERNAME"),
    ("bao-no-field", "bao://secret/x", "bao://MOUNT/PATH#FIELD"),
    ("op-too-short", "op://Private/OpenAI", "op://VAULT/ITEM/FIELD"),
    ("bws-not-uuid", "bws://openai", "bws://SECRET-ID"),
    ("pass-dot-dot", "pass://../../etc/shadow", "no '..'"),
    ("pass-option", "pass://-c", "no '..'"),
    ("aws-unknown-option", "aws-sm://prod/x?endpoint=http://evil", "aws-sm://SECRET-ID"),
    ("gcp-path-escape", "gcp-sm://p/../other", "gcp-sm://PROJECT/SECRET"),
]


@pytest.mark.parametrize(("text", "phrase"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_reference_is_refused_saying_how_to_write_it(text: str, phrase: str) -> None:
    with pytest.raises(InvalidSecretRef, match=phrase.replace("(", r"\(").replace("?", r"\?").replace(".", r"\.")):
        parse(text)


def test_every_scheme_has_a_good_example() -> None:
    assert {scheme for _, scheme in GOOD} == set(SCHEMES)


def test_the_stored_form_is_the_reference_behind_a_marker_no_typed_secret_can_carry() -> None:
    ref = parse("env://OPENAI_API_KEY")
    assert stored(ref).reveal() == MARKER + "env://OPENAI_API_KEY" and MARKER.startswith("\x00")
    assert stored_ref(stored(ref)) == "env://OPENAI_API_KEY"
    assert stored_ref(Secret(VALUE)) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_keeps_a_value_for_its_lifetime_then_resolves_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAVIS_REF_TTL", "60")
    values, clock = iter(["first-value-Aq1Sw2De3", "second-value-Fr4Gt5Hy6"]), Clock()
    calls: list[str] = []

    def resolve(ref: object) -> Secret:
        calls.append(str(ref))
        return Secret(next(values))

    cache = RefCache(resolve, clock)
    ref = parse("env://X")
    assert cache.get(ref).reveal() == "first-value-Aq1Sw2De3"
    clock.now = 59.9
    assert cache.get(ref).reveal() == "first-value-Aq1Sw2De3" and len(calls) == 1
    clock.now = 60.0
    assert cache.get(ref).reveal() == "second-value-Fr4Gt5Hy6" and len(calls) == 2
    assert [s.reveal() for s in cache.known(ref)] == ["second-value-Fr4Gt5Hy6", "first-value-Aq1Sw2De3"]


def test_a_ttl_of_zero_resolves_every_time_and_a_bad_one_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAVIS_REF_TTL", "0")
    calls: list[int] = []
    cache = RefCache(lambda ref: calls.append(1) or Secret(VALUE), Clock())
    cache.get(parse("env://X"))
    cache.get(parse("env://X"))
    assert len(calls) == 2
    monkeypatch.setenv("CLAVIS_REF_TTL", "soon")
    with pytest.raises(InvalidSecretRef, match="CLAVIS_REF_TTL='soon' must be a number of seconds"):
        ttl_from_env()


def test_concurrent_requests_share_one_resolution() -> None:
    started, release, calls = threading.Event(), threading.Event(), []

    def slow(ref: object) -> Secret:
        calls.append(1)
        started.set()
        release.wait(10)
        return Secret(VALUE)

    cache = RefCache(slow)
    ref = parse("env://X")
    threads = [threading.Thread(target=cache.get, args=(ref,)) for _ in range(5)]
    for thread in threads:
        thread.start()
    started.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [1]


def test_a_failed_resolution_is_not_cached_and_names_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REF_UNIT_X", raising=False)
    cache = RefCache(resolve_now)
    with pytest.raises(SecretRefUnresolved, match="REF_UNIT_X is not set in the proxy's environment"):
        cache.get(parse("env://REF_UNIT_X"))
    monkeypatch.setenv("REF_UNIT_X", VALUE)
    assert cache.get(parse("env://REF_UNIT_X")).reveal() == VALUE


def test_the_resolved_value_is_a_secret_that_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REF_UNIT_X", VALUE + "\n")
    secret = resolve_now(parse("env://REF_UNIT_X"))
    assert secret.reveal() == VALUE  # one trailing newline dropped
    assert VALUE not in repr(secret) and VALUE not in str(secret) and VALUE not in f"{secret}"


@pytest.mark.parametrize(
    ("mode", "phrase"),
    [(0o644, "chmod 600"), (0o620, "chmod 600"), (0o602, "chmod 600")],
    ids=["world-readable", "group-writable", "world-writable"],
)
def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int, phrase: str) -> None:
    path = tmp_path / "key"
    path.write_text(VALUE)
    path.chmod(mode)
    with pytest.raises(SecretRefUnresolved, match=phrase):
        resolve_now(parse(f"file://{path}"))


def test_a_file_reference_refuses_a_symbolic_link(tmp_path: Path) -> None:
    target, link = tmp_path / "key", tmp_path / "link"
    target.write_text(VALUE)
    target.chmod(0o600)
    link.symlink_to(target)
    with pytest.raises(SecretRefUnresolved, match="is not a link"):
        resolve_now(parse(f"file://{link}"))
    assert resolve_now(parse(f"file://{target}")).reveal() == VALUE


@pytest.mark.parametrize(
    "value", ["", "two\nlines", " padded", "tab\tinside"], ids=["empty", "two-lines", "padded", "tab"]
)
def test_a_value_that_would_split_a_header_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REF_UNIT_X", value)
    with pytest.raises(SecretRefUnresolved, match="REF_UNIT_X"):
        resolve_now(parse("env://REF_UNIT_X"))


def test_a_missing_program_says_which_and_that_it_must_be_on_the_proxys_path(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SecretRefUnresolved, match="needs the 'op' program, which is not on the proxy's PATH"):
        resolve_now(parse("op://Private/OpenAI/credential"))


def test_after_a_rotation_at_the_source_the_redactors_hold_the_new_and_the_previous_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response to a request sent just before the rotation may still echo the old value."""
    from clavis_mcp.vault import Vault
    from clavis_mcp.vault.redaction.service import ServiceRedactors
    from clavis_mcp.vault.refs import cache
    from tests.conftest import make_service

    old, new = "sk-before-rotation-Nb7Vc5Xz3Lk1Jh9", "sk-after-rotation-Qa2Ws4Ed6Rf8Tg0"
    vault = Vault.in_memory(tmp_path)
    vault.add_service(make_service("svc", "api.svc.test"), stored(parse("env://REF_UNIT_ROT")))
    monkeypatch.setenv("CLAVIS_REF_TTL", "0")
    redactors = ServiceRedactors(vault)
    cache.clear()
    try:
        monkeypatch.setenv("REF_UNIT_ROT", old)
        cache.get(parse("env://REF_UNIT_ROT"))  # what the proxy injected
        monkeypatch.setenv("REF_UNIT_ROT", new)
        cache.get(parse("env://REF_UNIT_ROT"))  # resolved again after the lifetime
        text, count = redactors.for_service(vault.snapshot(), "svc").values.redact_text(f"{old} and {new}")
        assert count == 2 and old not in text and new not in text
    finally:
        cache.clear()
