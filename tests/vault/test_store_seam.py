"""No module outside the storage layer writes SQL: the vault's state is reached through the Store
protocol (vault/storage/protocol.py), so a second backend needs no change above it.

The product's folders are read with ``ast``: every string constant (f-strings included) that
reads as an SQL statement is reported with its file and line, unless the file is in ``ALLOWED``
with the reason it keeps a database of its own.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s(OR\s\w+\s)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX|TRIGGER|UNIQUE)|ALTER\s+TABLE|DROP\s+TABLE|PRAGMA\s+\w+|BEGIN\s+IMMEDIATE)\b",
    re.DOTALL,
)
STORAGE = "vault/storage/"
ALLOWED = {
    "vault/audit/index.py": "the audit review index: a rebuildable cache of the log in a file of its own",
    "team/": "the team server: PostgreSQL is its storage backend, beside the protocol's implementations",
}


def product_files(root: Path) -> list[Path]:
    folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values()
    return sorted(path for folder in folders for path in (root / folder).rglob("*.py"))


def sql_outside_storage(root: Path) -> list[str]:
    found: dict[str, str] = {}  # one report per line (an f-string's parts are constants too)
    for path in product_files(root):
        relative = path.relative_to(root).as_posix()
        if relative.startswith(STORAGE) or any(relative.startswith(allowed) for allowed in ALLOWED):
            continue
        tree = ast.parse(path.read_text(), relative)
        docstrings = {
            id(body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and (body := node.body)
            and isinstance(body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if id(node) in docstrings:  # prose about the storage, not a statement
                continue
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            if SQL.search(text):
                found.setdefault(f"{relative}:{node.lineno}", text.strip()[:60])
    return [f"{where}: {text!r}" for where, text in found.items()]


def test_no_module_outside_the_storage_layer_writes_sql() -> None:
    assert sql_outside_storage(ROOT) == []


def test_the_check_finds_sql_where_it_was_before_the_storage_protocol(tmp_path: Path) -> None:
    """The check itself: a copy of the tree with one repository written the old way fails it."""
    for folder in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values():
        (tmp_path / folder).mkdir()
    (tmp_path / "vault" / "agents.py").write_text(
        "def revoke(vault, name):\n"
        '    """Under BEGIN IMMEDIATE: prose, not a statement."""\n'
        "    with vault.transaction() as conn:\n"
        '        conn.execute("DELETE FROM agents WHERE name = ?", (name,))\n'
        '    return vault.query(f"SELECT name FROM {TABLE}")\n'
        'METHODS = ("GET", "DELETE", "UPDATE")  # HTTP methods are not SQL\n'
    )
    (tmp_path / "mcp_front" / "settings.py").write_text('SCHEMA = """\nCREATE TABLE IF NOT EXISTS s (x)\n"""\n')
    assert sorted(line.split(": ")[0] for line in sql_outside_storage(tmp_path)) == [
        "mcp_front/settings.py:1",
        "vault/agents.py:4",
        "vault/agents.py:5",
    ]
