from __future__ import annotations

import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from clavis_mcp.vault import (
    DuplicateService,
    InsecurePermissions,
    InvalidService,
    UnknownService,
    Vault,
    VaultCorrupted,
    VaultError,
    VaultNotFound,
    validate_secret,
)
from clavis_mcp.vault.keys.keyfile import KEY_FILE
from clavis_mcp.vault.service import AuthSpec
from tests.conftest import make_service
from tests.vault.rawdb import query, raw

A, B = "sk-aaaaaaaaaaaaaaaaaaaaaaaa", "sk-bbbbbbbbbbbbbbbbbbbbbbbb"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_makes_private_files(vault: Vault, home: Path) -> None:
    assert mode(home) == 0o700
    for path in home.iterdir():
        if path.is_file():
            assert mode(path) == 0o600, path


def test_secret_round_trips_and_is_encrypted_at_rest(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(A))
    assert vault.secret("svc").reveal() == A
    vault.close()
    raw = b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())
    assert A.encode() not in raw
    with closing(Vault.open(home)) as reopened:
        assert reopened.secret("svc").reveal() == A


def test_list_and_remove(vault: Vault) -> None:
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    assert [s.name for s in vault.list_services()] == ["a", "b"]
    vault.remove_service("a")
    assert [s.name for s in vault.list_services()] == ["b"]
    with pytest.raises(UnknownService, match="known services: b"):
        vault.secret("a")


def test_duplicate_name_is_refused(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    with pytest.raises(DuplicateService):
        vault.add_service(make_service("a", "other.example.com"), validate_secret(B))


def test_services_may_share_a_host_and_then_both_claim_it(vault: Vault) -> None:
    """A personal and a work key for one provider (issue 16.14): both registered, neither the owner."""
    vault.add_service(make_service("wild", "*.example.com"), validate_secret(A))
    vault.add_service(make_service("api", "api.example.com"), validate_secret(B))
    snapshot = vault.snapshot()
    assert [s.name for s in snapshot.claimants("api.example.com", 443, "https", "/v1")] == ["api", "wild"]
    assert snapshot.owner_of("api.example.com", 443, "https", "/v1") is None
    assert snapshot.owner_of("files.example.com", 443, "https", "/v1").name == "wild"  # type: ignore[union-attr]


def test_a_binding_decides_among_services_sharing_a_host_and_never_falls_through(vault: Vault) -> None:
    vault.add_service(make_service("work", "api.example.com", path_prefixes=("/v1",)), validate_secret(A))
    vault.add_service(make_service("personal", "api.example.com"), validate_secret(B))
    snapshot = vault.snapshot()
    work = frozenset({"work"})
    assert [s.name for s in snapshot.claimants("api.example.com", 443, "https", "/v1/x", among=work)] == ["work"]
    assert snapshot.claimants("api.example.com", 443, "https", "/v2", among=work) == ()  # not personal's
    assert [s.name for s in snapshot.claimants("api.example.com", 443, "https", "/v2")] == ["personal"]
    other = frozenset({"unrelated"})  # a binding to no owner of this host leaves the choice as it was
    assert [s.name for s in snapshot.claimants("api.example.com", 443, "https", "/v1", among=other)] == ["work"]


def test_swapped_ciphertexts_are_detected(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    vault.close()
    conn = sqlite3.connect(home / "vault.db")
    blob_a = conn.execute("SELECT blob FROM secrets WHERE service='a'").fetchone()[0]
    conn.execute("UPDATE secrets SET blob=? WHERE service='b'", (blob_a,))
    conn.commit()
    conn.close()
    with closing(Vault.open(home)) as reopened:
        with pytest.raises(VaultCorrupted, match="integrity") as caught:
            reopened.secret("b")
        assert A not in str(caught.value) and B not in str(caught.value)
        assert reopened.secret("a").reveal() == A


def test_flipped_ciphertext_bit_is_detected(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.close()
    conn = sqlite3.connect(home / "vault.db")
    blob = bytearray(conn.execute("SELECT blob FROM secrets").fetchone()[0])
    blob[-1] ^= 1
    conn.execute("UPDATE secrets SET blob=?", (bytes(blob),))
    conn.commit()
    conn.close()
    with closing(Vault.open(home)) as reopened, pytest.raises(VaultCorrupted):
        reopened.secret("a")


def test_wrong_key_is_a_clear_error(vault: Vault, home: Path) -> None:
    vault.close()
    (home / KEY_FILE).write_bytes(b"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n")
    with pytest.raises(VaultCorrupted, match="key check"):
        Vault.open(home)


def test_missing_vault_says_how_to_create_one(home: Path) -> None:
    with pytest.raises(VaultNotFound, match="clavis-mcp init"):
        Vault.open(home)


def test_second_init_refuses(vault: Vault, home: Path) -> None:
    with pytest.raises(VaultError, match="already exists"):
        Vault.create(home)


@pytest.mark.parametrize("target", ["vault.db", KEY_FILE, "."], ids=["db", "keyfile", "folder"])
def test_readable_by_others_is_refused_with_the_fix(vault: Vault, home: Path, target: str) -> None:
    vault.close()
    path = home / target
    path.chmod(0o755 if path.is_dir() else 0o644)
    with pytest.raises(InsecurePermissions, match="chmod"):
        Vault.open(home)


def test_snapshot_sees_changes_made_by_another_connection(vault: Vault, home: Path) -> None:
    assert vault.snapshot().services == ()
    with closing(Vault.open(home)) as other:
        other.add_service(make_service("a", "a.example.com"), validate_secret(A))
    snapshot = vault.snapshot()
    assert [s.name for s in snapshot.services] == ["a"]
    assert snapshot.secrets["a"].reveal() == A


@pytest.mark.parametrize(
    "value", ["", "sk-abc\r\nX-Evil: 1", "sk\x00abc", " sk-padded", "sk-tab\tabc"],
    ids=["empty", "crlf", "nul", "leading-space", "tab"],
)  # fmt: skip
def test_secrets_that_would_split_a_header_are_refused(value: str) -> None:
    with pytest.raises(InvalidService) as caught:
        validate_secret(value)
    assert not value.strip() or value.strip() not in str(caught.value)


@pytest.mark.parametrize("rule", ["[fe80::1%25eth0]:443", "[fe80::1%eth0]", "fe80::1%eth0"])
def test_a_host_with_an_ipv6_zone_id_is_refused_at_registration_with_the_fix(rule: str) -> None:
    """A request's host never carries a zone id, so such a service could never be reached; a
    definition stored before this check still loads (parse_host_rule takes it)."""
    from clavis_mcp.vault import parse_hosts
    from clavis_mcp.vault.hosts import parse_host_rule

    with pytest.raises(InvalidService, match=r"zone id .*register the address without it"):
        parse_hosts([rule])
    assert "%" in parse_host_rule(rule).host


def test_garbage_vault_file_is_reported_not_crashed_on(vault: Vault, home: Path) -> None:
    vault.close()
    (home / "vault.db").write_bytes(b"this is not a database" * 100)
    for extra in ("vault.db-wal", "vault.db-shm"):
        (home / extra).unlink(missing_ok=True)
    with pytest.raises(VaultCorrupted, match="backup"):
        Vault.open(home)


# -- two services on one host, told apart by path prefix (SECURITY-CASES 11) ---------------------


def test_services_on_one_host_with_distinct_path_prefixes_are_allowed(vault: Vault) -> None:
    vault.add_service(make_service("v1", "api.example.com", path_prefixes=("/v1",)), validate_secret(A))
    vault.add_service(make_service("admin", "api.example.com", path_prefixes=("/v1/admin",)), validate_secret(B))
    assert [s.name for s in vault.list_services()] == ["admin", "v1"]


OWNERS = [
    ("/v1/models", "v1"),
    ("/v1/admin", "admin"),
    ("/v1/admin/users", "admin"),
    ("/v1/administrator", "v1"),
    ("/v2/x", "rest"),
    ("/", "rest"),
    ("/v1", "v1"),
]


@pytest.mark.parametrize(("path", "owner"), OWNERS, ids=[o[0] for o in OWNERS])
def test_owner_of_picks_the_most_specific_path_prefix(vault: Vault, path: str, owner: str) -> None:
    vault.add_service(make_service("rest", "api.example.com"), validate_secret(A))
    vault.add_service(make_service("v1", "api.example.com", path_prefixes=("/v1",)), validate_secret(B))
    vault.add_service(make_service("admin", "api.example.com", path_prefixes=("/v1/admin",)), validate_secret(A + "x"))
    snapshot = vault.snapshot()
    found = snapshot.owner_of("api.example.com", 443, "https", path)
    assert found is not None and found.name == owner
    assert {s.name for s in snapshot.owners("api.example.com", 443, "https")} == {"rest", "v1", "admin"}


def test_owner_of_without_a_path_refuses_to_guess_between_path_split_services(vault: Vault) -> None:
    vault.add_service(make_service("a", "api.example.com", path_prefixes=("/a",)), validate_secret(A))
    vault.add_service(make_service("b", "api.example.com", path_prefixes=("/b",)), validate_secret(B))
    snapshot = vault.snapshot()
    assert snapshot.owner_of("api.example.com", 443, "https") is None
    assert snapshot.owner_of("api.example.com", 443, "https", "/c") is None


def test_exact_host_beats_wildcard_on_the_same_path_length(vault: Vault) -> None:
    vault.add_service(make_service("wild", "*.example.com", path_prefixes=("/x",)), validate_secret(A))
    vault.add_service(make_service("api", "api.example.com", path_prefixes=("/y",)), validate_secret(B))
    snapshot = vault.snapshot()
    assert snapshot.owner_of("api.example.com", 443, "https", "/x/1").name == "wild"  # type: ignore[union-attr]
    assert snapshot.owner_of("api.example.com", 443, "https", "/y").name == "api"  # type: ignore[union-attr]


TIES = [
    (("api.example.com", ()), ("api.example.com", ())),
    (("api.example.com", ("/v1",)), ("api.example.com", ("/v1/",))),
    (("*.example.com", ("/v1", "/v2")), ("api.example.com", ("/v2",))),
    (("api.example.com", ("/",)), ("api.example.com", ())),
]


@pytest.mark.parametrize(
    ("first", "second"), TIES, ids=["no-prefixes", "same-prefix-other-spelling", "wildcard-shared", "root-vs-none"]
)
def test_a_tie_is_registered_and_left_for_the_caller_to_choose(
    vault: Vault, first: tuple[str, tuple[str, ...]], second: tuple[str, tuple[str, ...]]
) -> None:
    """Once refused at registration ("a destination must belong to one service"); now both are kept
    and the proxy asks the agent's binding, or refuses naming both (tests/proxy/test_shared_hosts.py)."""
    from clavis_mcp.vault.service import normalise_path_prefixes

    vault.add_service(
        make_service("one", first[0], path_prefixes=normalise_path_prefixes(first[1])), validate_secret(A)
    )
    vault.add_service(
        make_service("two", second[0], path_prefixes=normalise_path_prefixes(second[1])), validate_secret(B)
    )
    path = second[1][0].rstrip("/") + "/x" if second[1] else "/x"
    tied = vault.snapshot().claimants("api.example.com", 443, "https", path)
    assert [s.name for s in tied] == ["one", "two"]


# -- lifecycle ---------------------------------------------------------------------------------


def test_rotate_replaces_the_secret_and_the_old_ciphertext_is_gone_from_disk(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(A))
    old_blob = query(home, "SELECT blob FROM secrets WHERE service='svc'")[0][0]
    rotated = vault.rotate_secret("svc", validate_secret(B))
    assert vault.secret("svc").reveal() == B and rotated.rotated_at is not None
    assert vault.get_service("svc").rotated_at == rotated.rotated_at
    assert old_blob not in b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())


def test_update_service_keeps_the_secret(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    vault.add_service(make_service("b", "b.example.com"), validate_secret(B))
    from dataclasses import replace

    from clavis_mcp.vault import parse_hosts

    updated = vault.update_service(replace(vault.get_service("a"), hosts=parse_hosts(["c.example.com"])))
    assert [str(h) for h in vault.get_service("a").hosts] == ["c.example.com"] == [str(h) for h in updated.hosts]
    assert vault.secret("a").reveal() == A
    shared = vault.update_service(replace(vault.get_service("a"), hosts=parse_hosts(["b.example.com"])))
    assert [str(h) for h in shared.hosts] == ["b.example.com"]  # hosts may be shared now
    with pytest.raises(UnknownService):
        vault.update_service(make_service("ghost", "g.example.com"))


def test_add_services_is_all_or_nothing(vault: Vault) -> None:
    vault.add_service(make_service("taken", "t.example.com"), validate_secret(A))
    with pytest.raises(DuplicateService):
        vault.add_services(
            [
                (make_service("fresh", "f.example.com"), validate_secret(B)),
                (make_service("taken", "other.example.com"), validate_secret(B)),
            ]
        )
    assert [s.name for s in vault.list_services()] == ["taken"]


def test_development_format_vault_is_refused_with_what_to_do(vault: Vault, home: Path) -> None:
    vault.close()
    with closing(sqlite3.connect(home / "vault.db")) as conn, conn:
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with pytest.raises(VaultCorrupted, match="clavis-mcp init"):
        Vault.open(home)


def test_wal_and_shm_files_readable_by_others_are_refused(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(A))
    with closing(Vault.open(home)):
        wal = home / "vault.db-wal"
        assert wal.exists()
        wal.chmod(0o644)
        with pytest.raises(InsecurePermissions, match="chmod 600"):
            Vault.open(home)


HAND_BUILT = [
    ("template-crlf", {"auth": AuthSpec("header", "X-Key", "{secret}\r\nX-Evil: 1")}),
    ("bad-header-name", {"auth": AuthSpec("header", "X Key", "{secret}")}),
    ("query-param", {"auth": AuthSpec("query", "a&b")}),
    ("fixed-crlf", {"auth": AuthSpec("header", "X-Key", "{secret}", (("X-V", "1\nX-Evil: 1"),))}),
    ("bad-prefix", {"path_prefixes": ("/a/../b",)}),
    ("bad-method", {"methods": ("CONNECT",)}),
    ("bad-reveal", {"reveal": "everything"}),
]


@pytest.mark.parametrize(("case", "fields"), HAND_BUILT, ids=[h[0] for h in HAND_BUILT])
def test_hand_built_services_are_validated_at_registration(vault: Vault, case: str, fields: dict) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidService):
        vault.add_service(replace(make_service("svc", "api.example.com"), **fields), validate_secret(A))
    assert vault.list_services() == []


def test_registration_normalises_methods_and_prefixes(vault: Vault) -> None:
    vault.add_service(
        make_service("svc", "api.example.com", methods=("get",), path_prefixes=("/v1/",)), validate_secret(A)
    )
    stored = vault.get_service("svc")
    assert stored.methods == ("GET",) and stored.path_prefixes == ("/v1",)


def test_snapshot_is_kept_across_writes_that_touch_no_service(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    first = vault.snapshot()
    with raw(home) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        conn.execute("INSERT INTO scratch VALUES (1)")  # a write by any connection to another table
    assert vault.snapshot() is first
    with closing(Vault.open(home)) as other, other.store.atomic() as batch:
        batch.put("rate_limits", "a", {"headers": "{}"}, quiet=True)  # e.g. rate limits, every response
    assert vault.snapshot() is first
    with closing(Vault.open(home)) as other:
        other.rotate_secret("a", validate_secret(B))
    assert vault.snapshot() is not first
    assert vault.snapshot().secrets["a"].reveal() == B


@pytest.mark.parametrize(
    ("host", "owner"),
    [("api.example.com", "exact"), ("files.other.test", "wild"), ("a.b.other.test", "wild"),
     ("other.test", None), ("evilapi.example.com", None), ("API.EXAMPLE.COM.", "exact")],
    ids=["exact", "wildcard", "deep-wildcard", "bare-domain", "lookalike", "odd-spelling"],
)  # fmt: skip
def test_indexed_lookup_matches_the_rules(vault: Vault, host: str, owner: str | None) -> None:
    vault.add_service(make_service("exact", "api.example.com"), validate_secret(A))
    vault.add_service(make_service("wild", "*.other.test"), validate_secret(B))
    for i in range(50):
        vault.add_service(make_service(f"filler{i}", f"h{i}.filler.test"), validate_secret(A))
    found = vault.snapshot().owner_of(host, 443, "https")
    assert (found.name if found else None) == owner


def test_own_quiet_writes_keep_the_snapshot_and_service_writes_renew_it(vault: Vault) -> None:
    vault.add_service(make_service("a", "a.example.com"), validate_secret(A))
    first = vault.snapshot()
    with vault.store.atomic() as batch:
        batch.put("rate_limits", "a", {"headers": "{}"}, quiet=True)  # e.g. rate limits recorded per response
    assert vault.snapshot() is first
    vault.rotate_secret("a", validate_secret(B))
    assert vault.snapshot().secrets["a"].reveal() == B


def _notes(vault: Vault) -> dict[str, object]:
    def build() -> dict[str, object]:
        with vault.store.read() as batch:
            return {r.key: r.fields["note"] for r in batch.records("notes")}

    return vault.snapshot().derived("notes", build)


def test_a_change_to_a_record_from_any_process_renews_the_snapshot_views(vault: Vault, home: Path) -> None:
    assert _notes(vault) == {}
    with vault.store.atomic() as batch:
        batch.put("notes", "a", {"note": "mine"})
    assert _notes(vault) == {"a": "mine"}
    with Vault.open(home) as other, other.store.atomic() as batch:
        batch.put("notes", "a", {"note": "theirs"})
    assert _notes(vault) == {"a": "theirs"}


def test_a_quiet_record_leaves_the_snapshot_as_it_was(vault: Vault, home: Path) -> None:
    before = vault.snapshot()
    with vault.store.atomic() as batch:
        batch.put("notes", "c", {"note": "x"}, quiet=True)
    with Vault.open(home) as other, other.store.atomic() as batch:
        batch.put("notes", "d", {"note": "y"}, quiet=True)
    assert vault.snapshot() is before
