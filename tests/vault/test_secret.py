from __future__ import annotations

import logging
import pickle

import pytest

from clavis_mcp.vault import Secret
from clavis_mcp.vault.secret import FingerprintKey

VALUE = "sk-live-abcdefghijklmnop0123456789"


def test_secret_never_prints_its_value() -> None:
    secret = Secret(VALUE)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,), repr([secret])):  # noqa: UP031
        assert VALUE not in text
        assert secret.fingerprint in text


def test_secret_in_a_log_line_shows_the_fingerprint(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("using %s", secret)
    assert VALUE not in caplog.text and secret.fingerprint in caplog.text


def test_secret_reveals_only_through_reveal() -> None:
    assert Secret(VALUE).reveal() == VALUE


def test_secret_is_not_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(VALUE))


@pytest.mark.parametrize(
    ("value", "masked"),
    [(VALUE, "…6789"), ("ghp_0123456789abcdefXYZW", "…XYZW"), ("ghp_0123456789abcdefXYZ", "…****"), ("short", "…****")],
    ids=["long-shows-last-four", "24-chars-shows-last-four", "23-chars-shows-nothing", "short-shows-nothing"],
)
def test_masked_shows_the_last_four_of_a_long_secret_only(value: str, masked: str) -> None:
    assert Secret(value).masked() == masked


def test_fingerprint_is_keyed_and_stable_per_key() -> None:
    key, other = FingerprintKey.random(), FingerprintKey.random()
    assert Secret(VALUE, key).fingerprint == Secret(VALUE, key).fingerprint != Secret(VALUE, other).fingerprint
    assert Secret(VALUE, key).fingerprint.startswith("hmac:")


def test_equal_values_are_equal_and_hash_alike_whatever_their_fingerprint_key() -> None:
    first, second = Secret("clé-ü-0123456789", FingerprintKey.random()), Secret("clé-ü-0123456789")
    assert first == second and hash(first) == hash(second) and first != Secret("clé-ü-012345678")


def test_fingerprint_key_is_never_printed_or_pickled() -> None:
    key = FingerprintKey(b"k" * 32)
    assert "k" * 8 not in repr(key) and "kkkk" not in str(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
