from __future__ import annotations

import pytest

from vault import InvalidService, Secret, parse_header_template, validate_name
from vault.service import AuthSpec

GOOD_NAMES = ["openai", "stripe-prod", "my.api_2", "a"]
BAD_NAMES = ["", "Upper", "-lead", "has space", "x" * 65, "slash/name", "ünï"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n) for n in BAD_NAMES])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidService):
        validate_name(name)


BAD_TEMPLATES = [
    "Authorization Bearer {secret}",
    "Authorization: Bearer",
    "Authorization: {secret}{secret}",
    "Bad Header: {secret}",
    "X-Key: {secret}\r\nX-Evil: 1",
    ": {secret}",
]


@pytest.mark.parametrize("template", BAD_TEMPLATES, ids=[repr(t) for t in BAD_TEMPLATES])
def test_bad_header_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidService):
        parse_header_template(template)


def test_header_template_applies_the_secret() -> None:
    auth = parse_header_template("x-api-key: {secret}")
    assert auth.header_name == "x-api-key"
    assert auth.header_value(Secret("k-123")) == "k-123"


def test_basic_auth_with_the_key_as_user() -> None:
    auth = AuthSpec(kind="basic", name="Authorization", template="{secret}:")
    assert auth.header_value(Secret("sk_test_1")) == "Basic c2tfdGVzdF8xOg=="
