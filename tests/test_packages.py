"""What installs, under which names, and which layer may import which.

PyPI has unrelated distributions that install top-level ``proxy``, ``vault`` and ``certs``: ours
install as one namespace, ``clavis_mcp.*``, from the folders at the top of the repository.
"""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["vault", "certs", "addons", "proxy", "team", "ui", "mcp_front", "clavis_cli"]
# vault ← addons ← proxy ← team ← mcp_front ← cli, certs beside vault; ui beside mcp_front;
# mcp_front never imports an addon (docs/architecture.md).
MAY_IMPORT = {
    "vault": set(),
    "certs": {"vault"},  # paths only: certs sits beside vault
    "addons": {"vault", "certs"},
    "proxy": {"vault", "certs", "addons"},
    "team": {"vault", "certs", "addons", "proxy"},
    "ui": {"vault", "certs", "proxy"},
    "mcp_front": {"vault", "certs", "proxy", "team"},
    "clavis_cli": {"vault", "certs", "addons", "proxy", "team", "ui", "mcp_front"},
}
THIRD_PARTY_BANNED = {
    "vault": {"mitmproxy", "mcp"},
    "certs": {"mcp"},
    "addons": {"mcp"},
    "proxy": {"mcp"},
    "team": {"mcp"},
    "ui": {"mcp"},
}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_imported_from_this_repository(name: str) -> None:
    module = importlib.import_module(f"clavis_mcp.{name}")
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == REPO / name


def test_the_name_clavis_is_left_to_the_sdk() -> None:
    """`clavis` is the PyPI SDK the team server is tested with; nothing of ours may take its name."""
    assert not (REPO / "clavis").exists()
    sdk = importlib.import_module("clavis")
    assert "site-packages" in Path(sdk.__file__ or "").parts
    assert version("clavis") == "0.2.4"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path``; relative ones resolved to its top package
    (a relative import never leaves it: ``from ..errors`` in ``vault/auth/`` is still the vault)."""
    package = "clavis_mcp." + next(folder.name for folder in path.parents if folder.name in PACKAGES)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, package))
            else:
                module = node.module or ""
                found += [(node.lineno, f"{module}.{alias.name}" if module == "clavis_mcp" else module)
                          for alias in node.names]  # fmt: skip
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_import_only_downwards_and_through_the_namespace(package: str) -> None:
    """Read with ``ast``, so an import inside a function or under TYPE_CHECKING counts too."""
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imports_of(path):
            top, _, rest = module.partition(".")
            where = f"{path.relative_to(REPO)}:{line} imports {module}"
            assert top not in PACKAGES, f"{where}: write clavis_mcp.{module} (the installed name)"
            if top == "clavis_mcp":
                layer = rest.split(".")[0]
                assert layer == package or layer in MAY_IMPORT[package], f"{where}: an upward or sideways import"
            assert top not in THIRD_PARTY_BANNED.get(package, set()), where


def test_the_layering_test_can_fail(tmp_path: Path) -> None:
    (tmp_path / "vault").mkdir()
    bad = tmp_path / "vault" / "bad.py"
    bad.write_text("def f():\n    from clavis_mcp.addons import pipeline\n    import proxy\n")
    assert imports_of(bad) == [(2, "clavis_mcp.addons"), (3, "proxy")]


def test_vault_public_names_are_pinned() -> None:
    """Like httpx's __all__ test: a change to the public surface is a deliberate edit here."""
    from clavis_mcp import vault

    assert vault.__all__ == [
        "AuditLog", "AuditWriteError", "AuthSpec", "ClavisError", "DuplicateService", "HostRule",
        "InsecurePermissions", "InvalidService", "KeyStoreUnavailable", "Secret", "Service", "ServiceError",
        "Snapshot", "UnknownService", "Vault", "VaultCorrupted", "VaultError", "VaultLocked", "VaultNotFound",
        "canonical_host", "clavis_home", "is_public_address", "parse_header_template", "parse_host_rule",
        "parse_hosts", "validate_name", "validate_secret",
    ]  # fmt: skip


@pytest.mark.parametrize("package", ["vault", "mcp_front"])
def test_every_public_name_loads(package: str) -> None:
    """Both packages load their names on first use (PEP 562): a name listed but not found would
    fail only where it is first used."""
    module = importlib.import_module(f"clavis_mcp.{package}")
    assert all(getattr(module, name) is not None for name in module.__all__)


def test_the_version_the_server_reports_is_the_package_version() -> None:

    from clavis_mcp import mcp_front

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert mcp_front.__version__ == declared == version("clavis-mcp")


def test_the_wheel_installs_only_the_clavis_mcp_namespace(tmp_path: Path) -> None:
    """Built offline with the environment's setuptools, as pip would build it, from a clean copy
    (setuptools reuses a build/ folder, whose stale files would hide a package missing from the list)."""
    source, out = tmp_path / "source", tmp_path / "dist"
    for name in ("pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    sources = {f"clavis_mcp/{path.relative_to(source)}" for path in source.rglob("*.py")}
    code = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    built = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    with zipfile.ZipFile(out / built.stdout.strip().splitlines()[-1]) as wheel:
        names = set(wheel.namelist())
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"clavis_mcp"}
    assert sources <= names, f"not in the wheel: {sorted(sources - names)}"  # a sub-package missing from pyproject
    assert "clavis_mcp/vault/connectors.toml" in names


def test_the_top_level_proxy_package_of_proxy_py_coexists_with_ours(tmp_path: Path) -> None:
    """proxy.py (PyPI) installs a top-level ``proxy``; installing it next to clavis-mcp used to
    overwrite our ``proxy/__init__.py``. Run outside the repository, so only installed names count."""
    code = (
        "import proxy, clavis_mcp.proxy, clavis_mcp.vault.connectors as c; "
        "print(hasattr(proxy, 'Proxy'), hasattr(clavis_mcp.proxy, 'EmbeddedProxy'), len(c.load_catalog()) > 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True"]
