from __future__ import annotations

import pytest

from addons.request_policy import normalise_path

NORMALISED = [
    ("plain", "/v1/models", "/v1/models"),
    ("dot-dot-escapes-prefix", "/allowed/../admin", "/admin"),
    ("encoded-dot-dot", "/allowed/%2e%2e/admin", "/admin"),
    ("upper-encoded-dot-dot", "/allowed/%2E%2E/admin", "/admin"),
    ("mixed-encoded-dot", "/allowed/.%2e/admin", "/admin"),
    ("double-slash", "//admin", "/admin"),
    ("many-slashes", "/v1///models", "/v1/models"),
    ("single-dot", "/v1/./models", "/v1/models"),
    ("dot-dot-above-root", "/../../etc", "/etc"),
    ("trailing-slash-kept", "/v1/", "/v1/"),
    ("trailing-dot-dot", "/v1/models/..", "/v1/"),
    ("root", "/", "/"),
    ("other-escapes-kept", "/v1/a%20b", "/v1/a%20b"),
]


@pytest.mark.parametrize(("path", "expected"), [c[1:] for c in NORMALISED], ids=[c[0] for c in NORMALISED])
def test_normalise_path(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


@pytest.mark.parametrize(
    "path",
    ["/allowed%2f..%2fadmin", "/allowed%2F../admin", "/allowed\\..\\admin", "/a%5cb", "/a%00b", "/a b", "relative"],
    ids=["encoded-slash", "encoded-slash-upper", "backslash", "encoded-backslash", "nul", "space", "relative"],
)
def test_ambiguous_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        normalise_path(path)
