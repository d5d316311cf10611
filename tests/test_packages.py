"""PyPI has unrelated distributions named proxy, certs and addons: ours must be the ones imported."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["vault", "certs", "addons", "proxy", "mcp_front", "clavis_cli"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_imported_from_this_repository(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == REPO / name


def test_no_package_is_named_clavis() -> None:
    assert not (REPO / "clavis").exists()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("clavis")


def test_vault_imports_neither_mitmproxy_nor_mcp() -> None:
    for path in (REPO / "vault").glob("*.py"):
        text = path.read_text()
        assert "import mitmproxy" not in text and "from mitmproxy" not in text, path
        assert "from mcp" not in text and "import mcp" not in text, path


def test_vault_public_names_are_pinned() -> None:
    """Like httpx's __all__ test: a change to the public surface is a deliberate edit here."""
    import vault

    assert vault.__all__ == [
        "AuditLog", "AuditWriteError", "AuthSpec", "ClavisError", "DuplicateService", "HostRule",
        "InsecurePermissions", "InvalidService", "KeyStoreUnavailable", "Secret", "Service", "ServiceError",
        "Snapshot", "UnknownService", "Vault", "VaultCorrupted", "VaultError", "VaultLocked", "VaultNotFound",
        "canonical_host", "clavis_home", "is_public_address", "parse_header_template", "parse_host_rule",
        "parse_hosts", "validate_name", "validate_secret",
    ]  # fmt: skip


def test_layers_import_only_downwards() -> None:
    """DESIGN.md §2: vault ← addons ← proxy ← mcp_front ← cli; mcp_front never imports an addon."""
    forbidden = {
        "vault": ("addons", "proxy", "mcp_front", "clavis_cli", "mitmproxy", "mcp"),
        "certs": ("addons", "proxy", "mcp_front", "clavis_cli"),
        "addons": ("proxy", "mcp_front", "clavis_cli"),
        "proxy": ("mcp_front", "clavis_cli"),
        "mcp_front": ("addons", "clavis_cli"),
    }
    for package, banned in forbidden.items():
        for path in (REPO / package).glob("*.py"):
            for line in path.read_text().splitlines():
                words = line.strip().split()
                if len(words) >= 2 and words[0] in ("import", "from"):
                    top = words[1].split(".")[0]
                    assert top not in banned, f"{path.name} imports {words[1]}"


def test_the_version_the_server_reports_is_the_package_version() -> None:
    import tomllib
    from importlib.metadata import version

    import mcp_front

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert mcp_front.__version__ == declared == version("clavis-mcp")
