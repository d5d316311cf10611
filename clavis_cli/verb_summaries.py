"""One-line summaries of the verbs, read from their modules' source without importing them.

`clavis-mcp --help` lists every verb with its first docstring line. Importing each verb's
module for that line loads the vault, the team client and their dependencies (about 0.15 s
of the 0.2 s `--help` took); reading the source with :mod:`ast` costs a fraction, and
nothing the modules import at their top runs. A verb whose definition this reader does not
recognise is left out of the result, and the caller imports its module as before.
"""

from __future__ import annotations

import ast
import importlib.util

SUFFIXES = {"command", "cmd", "group", "grp"}  # click drops these from a derived name


def summaries(package: str, module_name: str, _seen: frozenset[str] = frozenset()) -> dict[str, str]:
    """``{verb: docstring}`` for the top-level click commands and groups defined in the module, and in
    the sibling modules it imports whole (``from . import service_commands``), whose verbs it may list."""
    spec = importlib.util.find_spec(f"{package}.{module_name}")
    if spec is None or spec.origin is None:
        return {}
    try:
        with open(spec.origin, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError):
        return {}
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
            for alias in node.names:
                if alias.name not in _seen | {module_name}:
                    found |= summaries(package, alias.name, _seen | {module_name})
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                name = _command_name(decorator, node.name)
                if name is not None:
                    found[name] = _help(decorator) or ast.get_docstring(node) or ""
    return found


def _command_name(decorator: ast.expr, function: str) -> str | None:
    """The verb a ``@click.command(...)`` / ``@click.group(...)`` decorator names, else None."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "click"
            and func.attr in ("command", "group")):  # fmt: skip
        return None  # `@group.command(...)` defines a sub-command, not a verb
    if decorator.args and isinstance(decorator.args[0], ast.Constant) and isinstance(decorator.args[0].value, str):
        return decorator.args[0].value
    for keyword in decorator.keywords:
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            return keyword.value.value
    name = function.lower().replace("_", "-")
    left, sep, suffix = name.rpartition("-")
    return left if sep and suffix in SUFFIXES else name


def _help(decorator: ast.expr) -> str | None:
    if isinstance(decorator, ast.Call):
        for keyword in decorator.keywords:
            if keyword.arg in ("short_help", "help") and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return None
