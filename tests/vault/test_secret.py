from __future__ import annotations

import logging
import pickle

import pytest

from vault import Secret

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
    [(VALUE, "sk-…6789"), ("ghp_0123456789abcdefXYZW", "ghp…XYZW"), ("short", "…****")],
    ids=["dash-prefix", "plain-prefix", "short-shows-nothing"],
)
def test_masked_shows_prefix_and_last_four(value: str, masked: str) -> None:
    assert Secret(value).masked() == masked
