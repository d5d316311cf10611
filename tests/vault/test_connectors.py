"""The connector catalog: built-in data is complete and valid; user files extend it under the same rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import InvalidService, Secret
from clavis_mcp.vault.connectors import CATALOG_FILE, Probe, connector, load_catalog

BUILT_IN = load_catalog()
REQUIRED = ["openai", "anthropic", "github", "stripe", "slack", "generic", "google", "huggingface", "notion", "linear"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_connectors_are_built_in_with_docs_hosts_and_a_probe(name: str) -> None:
    entry = BUILT_IN[name]
    assert entry.source == "built-in"
    if name == "generic":
        assert entry.hosts == () and entry.probe is None
        return
    assert entry.docs.startswith("https://") and entry.hosts and entry.probe is not None


HEADERS = [
    ("openai", "Authorization", "Bearer sk-x", {}),
    ("anthropic", "x-api-key", "sk-x", {"anthropic-version": "2023-06-01"}),
    ("github", "Authorization", "Bearer sk-x", {"X-GitHub-Api-Version": "2022-11-28"}),
    ("stripe", "Authorization", "Basic c2steDo=", {}),
    ("linear", "Authorization", "sk-x", {}),
    ("google", "x-goog-api-key", "sk-x", {}),
]


@pytest.mark.parametrize(("name", "header", "value", "fixed"), HEADERS, ids=[h[0] for h in HEADERS])
def test_connector_auth_follows_the_provider_convention(name: str, header: str, value: str, fixed: dict) -> None:
    auth = BUILT_IN[name].auth
    assert auth.header_name == header and auth.header_value(Secret("sk-x")) == value
    assert dict(auth.extra_headers) == fixed


PROBES = [
    ("openai", Probe("GET", "/v1/models")),
    ("github", Probe("GET", "/rate_limit")),
    ("stripe", Probe("GET", "/v1/balance")),
    ("slack", Probe("GET", "/api/auth.test")),
]


@pytest.mark.parametrize(("name", "probe"), PROBES, ids=[p[0] for p in PROBES])
def test_probes_are_cheap_read_only_requests(name: str, probe: Probe) -> None:
    assert BUILT_IN[name].probe == probe


def test_rate_limit_headers_are_lower_case_names() -> None:
    assert "x-ratelimit-remaining-requests" in BUILT_IN["openai"].rate_limit_headers
    assert "anthropic-ratelimit-requests-remaining" in BUILT_IN["anthropic"].rate_limit_headers
    for entry in BUILT_IN.values():
        assert all(h == h.lower() for h in entry.rate_limit_headers)


def test_query_parameter_connector_is_available() -> None:
    assert BUILT_IN["serpapi"].auth.kind == "query" and BUILT_IN["serpapi"].auth.name == "api_key"


def test_a_catalog_file_in_the_vault_home_adds_and_overrides(tmp_path: Path) -> None:
    (tmp_path / CATALOG_FILE).write_text(
        '[acme]\ntitle = "Acme"\nhosts = ["api.acme.test"]\nauth = "query"\nparam = "token"\nprobe = "GET /ping"\n'
        '[openai]\nhosts = ["eu.api.openai.com"]\nauth = "bearer"\n'
    )
    catalog = load_catalog(tmp_path)
    assert connector("acme", catalog).auth.name == "token" and catalog["acme"].source.endswith(CATALOG_FILE)
    assert [str(h) for h in catalog["openai"].hosts] == ["eu.api.openai.com"]
    assert "stripe" in catalog


BAD_ENTRIES = [
    ('[x]\nhosts = ["*.com"]\n', "public suffix"),
    ('[x]\nhosts = ["a.test"]\nauth = "header"\nheader = "x-key"\ntemplate = "key"\n', "{secret} exactly once"),
    ('[x]\nhosts = ["a.test"]\nhost = "typo.test"\n', "unknown fields"),
    ('[x]\nhosts = ["a.test"]\nprobe = "GET models"\n', "probe"),
    ('[Bad]\nhosts = ["a.test"]\n', "invalid service name"),
    ("[x\n", "not valid TOML"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    BAD_ENTRIES,
    ids=["psl-wildcard", "no-placeholder", "unknown-field", "bad-probe", "bad-name", "toml"],
)
def test_bad_catalog_entries_are_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "extra.toml"
    path.write_text(text)
    with pytest.raises(InvalidService, match="extra.toml") as caught:
        load_catalog(None, path)
    assert message in str(caught.value)


def test_unknown_connector_lists_the_known_ones() -> None:
    with pytest.raises(InvalidService, match="known connectors: anthropic"):
        connector("nope", BUILT_IN)


def test_every_built_in_connector_is_documented_with_its_source() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "connectors.md").read_text()
    for entry in BUILT_IN.values():
        assert f"| `{entry.name}` |" in doc and entry.docs in doc
