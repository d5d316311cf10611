"""One serialisation per record: ``sealed_line`` writes exactly the line ``encode(seal(...))`` would."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clavis_mcp.vault.audit.anchor import checkpoint_text
from clavis_mcp.vault.audit.chain import GENESIS, MAC, Link, _mac_of, authentic, canonical, encode, seal, sealed_line
from clavis_mcp.vault.audit.log import CHAIN_FIELDS, FIELDS

KEY = b"k" * 32
_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
_records = st.dictionaries(st.sampled_from(sorted({*FIELDS, *CHAIN_FIELDS} - {"seq", "prev", "mac"})), _values)


@given(_records, st.one_of(st.none(), st.builds(Link, st.integers(1, 10**9), st.text("0123456789abcdef"))))
def test_sealed_line_is_the_encoded_sealed_record(fields: dict[str, Any], previous: Link | None) -> None:
    record, line = sealed_line(KEY, previous, fields)
    assert record == seal(KEY, previous, fields)
    assert line == encode(record)
    assert authentic(KEY, record)


def test_values_that_look_like_keys_do_not_move_the_mac() -> None:
    tricky = {"id": 'x","method":"GET', "path": '/a\\",\\"prev\\":', "reason": ',"method":', "method": "GET"}
    record, line = sealed_line(KEY, None, tricky)
    assert line == encode(record) and record["prev"] == GENESIS


@given(_records)
def test_the_mac_is_the_keyed_hash_of_the_domain_and_the_canonical_record(fields: dict[str, Any]) -> None:
    record = seal(KEY, None, fields)  # the key's hash state is kept between records: same MAC as from scratch
    unsigned = {k: v for k, v in record.items() if k != MAC}
    expected = hmac.digest(KEY, b"clavis-mcp audit v1\n" + canonical(unsigned), hashlib.sha256).hex()
    assert record[MAC] == expected and seal(b"j" * 32, None, fields)[MAC] != expected


@pytest.mark.parametrize("size", [0, 1, 32, 63, 64, 65, 200], ids=lambda size: f"{size}-byte key")
@given(body=st.binary(max_size=2000))
def test_the_mac_is_hmac_sha256_for_keys_of_any_length(size: int, body: bytes) -> None:
    key = bytes(range(size))
    expected = hmac.new(key, b"clavis-mcp audit v1\n" + body, hashlib.sha256).hexdigest()
    assert _mac_of(key, body) == expected


@given(st.builds(Link, st.integers(0, 10**12), st.text()))
def test_the_checkpoint_text_is_its_json(link: Link) -> None:
    assert checkpoint_text(link) == json.dumps({"seq": link.seq, "mac": link.mac}).encode()


@given(_records)
def test_the_canonical_form_is_sorted_compact_ascii_json(fields: dict[str, Any]) -> None:
    """The encoder made once gives exactly what ``json.dumps`` gives with the same options."""
    expected = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert canonical(fields) == expected
