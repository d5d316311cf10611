"""Each connector may name its SDK's base-URL and API-key variables (base-URL mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clavis_mcp.vault import InvalidService
from clavis_mcp.vault.connectors import load_catalog


def test_builtin_connectors_name_their_sdk_variables() -> None:
    catalog = load_catalog()
    named = {name: (c.base_url_env, c.base_url_path, c.key_env) for name, c in catalog.items() if c.base_url_env}
    assert named == {
        "openai": ("OPENAI_BASE_URL", "/v1", "OPENAI_API_KEY"),
        "anthropic": ("ANTHROPIC_BASE_URL", "", "ANTHROPIC_API_KEY"),
        "github": ("GITHUB_API_URL", "", "GITHUB_TOKEN"),
        "huggingface": ("HF_ENDPOINT", "", "HF_TOKEN"),
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('base_url_env = "OPENAI BASE"', "not an environment variable name"),
        ('base_url_env = "1X"', "not an environment variable name"),
        ('key_env = "A=B"', "not an environment variable name"),
        ('base_url_path = "v1"', "must look like '/v1'"),
        ('base_url_path = "/v1/"', "must look like '/v1'"),
        ('base_url_path = "/v1?x=1"', "must look like '/v1'"),
    ],
)
def test_a_bad_variable_or_path_in_a_user_catalog_is_one_clear_error(tmp_path: Path, line: str, message: str) -> None:
    extra = tmp_path / "connectors.toml"
    extra.write_text(f'[mine]\nhosts = ["api.mine.example"]\n{line}\n')
    with pytest.raises(InvalidService, match=message):
        load_catalog(extra=extra)
