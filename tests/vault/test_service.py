from __future__ import annotations

import pytest

from clavis_mcp.vault import InvalidService, Secret, parse_header_template, validate_name
from clavis_mcp.vault.service import (
    AuthSpec,
    build_auth,
    normalise_methods,
    normalise_path_prefix,
    prefix_covers,
)

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


METHODS = [(["get", "Post", "GET"], ("GET", "POST")), ([], ()), (["delete"], ("DELETE",))]


@pytest.mark.parametrize(("given", "expected"), METHODS, ids=["case-and-duplicates", "empty-means-all", "one"])
def test_methods_are_normalised(given: list[str], expected: tuple[str, ...]) -> None:
    assert normalise_methods(given) == expected


BAD_METHODS = ["CONNECT", "trace", "GE T", "G\r\nET", ""]


@pytest.mark.parametrize("method", BAD_METHODS, ids=[repr(m) for m in BAD_METHODS])
def test_bad_methods_are_refused(method: str) -> None:
    with pytest.raises(InvalidService):
        normalise_methods([method])


PREFIXES = [("/v1/", "/v1"), ("/v1", "/v1"), ("/", "/"), ("/a/b/", "/a/b"), ("/v1/models.list", "/v1/models.list")]


@pytest.mark.parametrize(("given", "expected"), PREFIXES, ids=[p[0] for p in PREFIXES])
def test_path_prefixes_have_one_spelling(given: str, expected: str) -> None:
    assert normalise_path_prefix(given) == expected


BAD_PREFIXES = ["v1", "/a/../admin", "/a/./b", "//admin", "/%2e%2e/x", "/a?b=1", "/a#x", "/a\\b", "/a\r\nb", "/a b"]


@pytest.mark.parametrize("prefix", BAD_PREFIXES, ids=[repr(p) for p in BAD_PREFIXES])
def test_ambiguous_path_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidService):
        normalise_path_prefix(prefix)


COVERS = [
    ("/v1", "/v1", True),
    ("/v1", "/v1/models", True),
    ("/v1", "/v10", False),
    ("/v1", "/v1?x=1", True),
    ("/", "/anything", True),
    ("/v1/admin", "/v1", False),
]


@pytest.mark.parametrize(("prefix", "path", "covered"), COVERS, ids=[f"{c[0]}~{c[1]}" for c in COVERS])
def test_prefixes_cover_whole_segments_only(prefix: str, path: str, covered: bool) -> None:
    assert prefix_covers(prefix, path) is covered


AUTHS = [
    (("bearer", {}), AuthSpec("header", "Authorization", "Bearer {secret}")),
    (("header", {"header": "x-api-key", "template": "{secret}"}), AuthSpec("header", "x-api-key", "{secret}")),
    (("basic", {}), AuthSpec("basic", "Authorization", "{secret}:")),
    (("basic", {"template": "api:{secret}"}), AuthSpec("basic", "Authorization", "api:{secret}")),
    (("query", {"param": "api_key"}), AuthSpec("query", "api_key")),
    (
        ("header", {"header": "x-api-key", "extra_headers": {"anthropic-version": "2023-06-01"}}),
        AuthSpec("header", "x-api-key", "{secret}", (("anthropic-version", "2023-06-01"),)),
    ),
]


@pytest.mark.parametrize(
    ("given", "spec"), AUTHS, ids=["bearer", "header", "basic-key-as-user", "basic-user", "query", "fixed"]
)
def test_build_auth(given: tuple[str, dict[str, object]], spec: AuthSpec) -> None:
    assert build_auth(given[0], **given[1]) == spec  # type: ignore[arg-type]


BAD_AUTHS = [
    ("bearer", {"template": "Bearer {secret} {secret}"}),
    ("basic", {"template": "{secret}"}),
    ("query", {}),
    ("query", {"param": "a b"}),
    ("header", {"header": "Bad Name"}),
    ("header", {"extra_headers": {"Authorization": "x"}}),
    ("header", {"extra_headers": {"x-v": "1\r\nX-Evil: 1"}}),
    ("header", {"extra_headers": {"x-v": "{secret}"}}),
    ("digest", {}),
]


@pytest.mark.parametrize(
    ("kind", "options"),
    BAD_AUTHS,
    ids=["two-placeholders", "basic-without-colon", "query-without-param", "query-bad-param", "bad-header-name",
         "fixed-authorization", "fixed-crlf", "fixed-placeholder", "unknown-kind"],
)  # fmt: skip
def test_bad_auth_descriptions_are_refused(kind: str, options: dict[str, object]) -> None:
    with pytest.raises(InvalidService):
        build_auth(kind, **options)  # type: ignore[arg-type]
