"""Build the MCP bundle (``.mcpb``) of clavis-mcp, validated and packed by the official npm tooling.

The bundle uses the ``uv`` server type: it carries the source packages and pyproject.toml,
and the host (Claude Desktop) creates the Python environment from them, because mitmproxy
and pydantic have compiled parts that cannot be bundled portably. Usage:

    python bundle/build.py [--out dist/clavis-mcp.mcpb]

Needs the pinned ``@anthropic-ai/mcpb`` in tests/node/mcpb (scripts/ensure-node-deps).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "bundle"
MCPB = ROOT / "tests" / "node" / "mcpb" / "node_modules" / ".bin" / "mcpb"
PROJECT_FILES = ("pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


class BundleError(RuntimeError):
    """The bundle could not be staged, validated or packed; the message says which and why."""


def stage(dest: Path) -> Path:
    """Lay out the bundle's files in ``dest``: manifest (with the project's version), entry point, project."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = project["project"]["version"]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.copy2(HERE / "server_main.py", dest / "server_main.py")
    for name in PROJECT_FILES:
        shutil.copy2(ROOT / name, dest / name)
    for folder in project["tool"]["setuptools"]["package-dir"].values():
        shutil.copytree(ROOT / folder, dest / folder, ignore=IGNORED)
    return dest


def mcpb(*args: str) -> str:
    if not MCPB.exists():
        raise BundleError(f"{MCPB} is missing; run scripts/ensure-node-deps")
    done = subprocess.run([str(MCPB), *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BundleError(f"mcpb {args[0]} failed: {done.stdout}{done.stderr}")
    return done.stdout


def build(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="clavis-bundle-") as work:
        staged = stage(Path(work) / "clavis-mcp")
        mcpb("validate", str(staged / "manifest.json"))
        out.parent.mkdir(parents=True, exist_ok=True)
        mcpb("pack", str(staged), str(out))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "clavis-mcp.mcpb")
    args = parser.parse_args()
    try:
        print(build(args.out))
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
