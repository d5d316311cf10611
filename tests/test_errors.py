"""Every exception class of the product is defined once, in clavis_mcp.vault.errors, and drawn in its tree.

A reader looking for what can go wrong, and where each boundary maps it, reads one module. The
walker reads the source (ast), so it also sees classes defined inside functions; a second check
imports every module and looks at what is really there.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

from clavis_mcp.vault import errors

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["vault", "certs", "addons", "proxy", "mcp_front", "clavis_cli"]
ERRORS_FILE = REPO / "vault" / "errors.py"
# Sentinels raised and caught inside one module, never crossing a boundary (named in the errors docstring).
PRIVATE = {
    ("vault/audit/log.py", "_ChainCut"),
    ("vault/redaction/decoding.py", "_Full"),
    ("proxy/base_url_front.py", "_Failed"),
    ("proxy/base_url_front.py", "_ClientGone"),
}
BUILTIN_EXCEPTIONS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}


def base_name(node: ast.expr) -> str:
    """``Error`` for ``Error``, ``httpx.Error`` or ``Error[T]``."""
    if isinstance(node, ast.Subscript):
        return base_name(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def exception_classes(folder: Path) -> set[tuple[str, str]]:
    """``(file relative to the repository, class name)`` of every exception class defined under ``folder``.

    A class is an exception if a base is a built-in exception, an exception found here (to a fixed
    point, so order does not matter), or a name ending in Error or Exception (a library's)."""
    classes: list[tuple[str, str, list[str]]] = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(folder.parent).as_posix()
        classes += [
            (where, node.name, [base_name(base) for base in node.bases])
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
        ]
    known = set(BUILTIN_EXCEPTIONS)
    found: set[tuple[str, str]] = set()
    while True:
        new = {
            (where, name)
            for where, name, bases in classes
            if any(base in known or base.endswith(("Error", "Exception")) for base in bases)
        }
        if new == found:
            return found
        found = new
        known |= {name for _, name in found}


def product_exceptions() -> set[tuple[str, str]]:
    return set().union(*(exception_classes(REPO / package) for package in PACKAGES))


def test_every_exception_class_is_defined_in_the_errors_module() -> None:
    elsewhere = {(where, name) for where, name in product_exceptions() if where != "vault/errors.py"} - PRIVATE
    assert not elsewhere, f"define these in clavis_mcp/vault/errors.py and import them from there: {sorted(elsewhere)}"


def test_the_private_sentinels_still_exist_where_the_docstring_says() -> None:
    assert product_exceptions() >= PRIVATE
    assert all(name in (errors.__doc__ or "") for _, name in PRIVATE)


def test_every_class_of_the_errors_module_is_in_its_docstring_tree() -> None:
    tree = (errors.__doc__ or "").split("\n\n")[1]
    drawn = {line.lstrip(" │├└─").split()[0] for line in tree.splitlines() if line.strip()}
    defined = {name for where, name in product_exceptions() if where == "vault/errors.py"}
    assert defined, "the walker found no class in vault/errors.py"
    assert defined <= drawn, f"draw these in the tree of vault/errors.py: {sorted(defined - drawn)}"
    assert drawn - {"Exception"} <= defined, f"the tree draws classes that do not exist: {sorted(drawn - defined)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_imported_module_holds_an_exception_class_of_its_own(package: str) -> None:
    """The same rule on what Python really builds (a class made by a factory escapes the ast walk)."""
    root = importlib.import_module(f"clavis_mcp.{package}")
    own = []
    for info in pkgutil.walk_packages(root.__path__, f"{root.__name__}."):
        module = importlib.import_module(info.name)
        own += [
            f"{info.name}.{name}"
            for name, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == info.name
            and info.name != errors.__name__
            and not name.startswith("_")
        ]
    assert not own, f"define these in clavis_mcp/vault/errors.py: {own}"


def test_the_errors_test_can_fail(tmp_path: Path) -> None:
    folder = tmp_path / "somepkg"
    (folder / "inner").mkdir(parents=True)
    (folder / "errors.py").write_text("class BaseOops(Exception):\n    pass\n")
    (folder / "inner" / "thing.py").write_text(
        "from ..errors import BaseOops\n\n"
        "class Oops(BaseOops):\n    pass\n\n"
        "class Plain:\n    pass\n\n"
        "def f():\n    class Nested(Oops):\n        pass\n\n"
        "class Lib(httpx.HTTPError):\n    pass\n"
    )
    assert exception_classes(folder) == {
        ("somepkg/errors.py", "BaseOops"),
        ("somepkg/inner/thing.py", "Oops"),
        ("somepkg/inner/thing.py", "Nested"),
        ("somepkg/inner/thing.py", "Lib"),
    }
