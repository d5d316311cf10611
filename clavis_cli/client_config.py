"""Claude Desktop's configuration file: where it is, and adding our entry without harming the rest.

The file belongs to the user and to other MCP servers. We change one key
(``mcpServers.clavis``), keep every other key and its order, keep a timestamped backup of
what was there, and replace the file atomically, so a crash leaves the old file or the new
one. A file that is not valid JSON is never touched: the error names the line and column.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from clavis_mcp.vault.errors import ConfigError

SERVER_NAME = "clavis"
CONFIG_NAME = "claude_desktop_config.json"
INSTALL_DOC = "docs/install.md"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Installed:
    path: Path
    created: bool  # the file did not exist
    changed: bool  # the entry was added or differed
    backup: Path | None
    changes: tuple[str, ...] = ()  # what changed in the entry, in words (names only, never env values)


def claude_desktop_config_path(
    platform: str = sys.platform, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Path:
    """Where Claude Desktop reads its configuration on this operating system."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Claude" / CONFIG_NAME
    if platform.startswith("win"):
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        return base / "Claude" / CONFIG_NAME
    config = env.get("XDG_CONFIG_HOME")
    return (Path(config) if config else home / ".config") / "Claude" / CONFIG_NAME


def clavis_executable() -> Path:
    """Absolute path of the ``clavis-mcp`` being run: Claude Desktop does not inherit the shell's PATH."""
    name = "clavis-mcp.exe" if os.name == "nt" else "clavis-mcp"
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside.absolute()
    found = shutil.which("clavis-mcp")
    if found:
        return Path(found).absolute()
    raise ConfigError("cannot find the clavis-mcp executable; install clavis-mcp (pipx install clavis-mcp) first")


def checkout_of(path: Path) -> Path | None:
    """The clavis-mcp source checkout that ``path`` lies in (as written or with links resolved), if any."""
    for spelling in (path.absolute(), path.resolve()):
        for parent in spelling.parents:
            try:
                project = (parent / "pyproject.toml").read_text(encoding="utf-8")
            except OSError:
                continue
            if re.search(r'^name\s*=\s*"clavis-mcp"', project, re.MULTILINE):
                return parent
    return None


def editable_source(executable: Path) -> Path | None:
    """The source folder of an editable install of clavis-mcp in the environment ``executable`` belongs to."""
    prefix = executable.resolve().parent.parent
    found = [*prefix.glob("lib/python*/site-packages/clavis_mcp-*.dist-info/direct_url.json"),
             *prefix.glob("Lib/site-packages/clavis_mcp-*.dist-info/direct_url.json")]  # fmt: skip
    for direct_url in found:
        try:
            origin = json.loads(direct_url.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(origin, dict) and (origin.get("dir_info") or {}).get("editable"):
            return Path(unquote(urlparse(str(origin.get("url", ""))).path))
    return None


def fragile_reason(executable: Path) -> str | None:
    """Why ``executable`` would stop working when a source checkout moves or is cleaned; None if it would not."""
    source = editable_source(executable)
    if source is not None:
        return f"{executable} runs an editable install of the source checkout {source}"
    checkout = checkout_of(executable)
    if checkout is not None:
        return f"{executable} lies inside the source checkout {checkout}"
    return None


def installed_executable() -> Path:
    """The ``clavis-mcp`` to write into a client's config: one installed outside any source checkout.

    The running one if it is such an install, else the one on PATH; otherwise ConfigError, since
    an entry pointing into a clone breaks when the clone is moved or ``make clean`` removes its venv.
    """
    name = "clavis-mcp.exe" if os.name == "nt" else "clavis-mcp"
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which("clavis-mcp")
    if found:
        # The PATH entry first when it is this very program (pipx's and uv's link in ~/.local/bin):
        # it survives the tool moving its environments, which the path behind the link may not.
        on_path = Path(found)
        candidates.insert(0 if _same(on_path, candidates[0]) else 1, on_path)
    reasons = []
    for candidate in candidates:
        if not candidate.exists():
            continue
        reason = fragile_reason(candidate)
        if reason is None:
            return candidate.absolute()
        reasons.append(reason)
    if not reasons:
        raise ConfigError(f"cannot find the clavis-mcp executable; install clavis-mcp first (see {INSTALL_DOC})")
    raise ConfigError(
        "; ".join(dict.fromkeys(reasons)) + ": Claude Desktop would lose it when the checkout moves or is cleaned. "
        f"Install clavis-mcp for real use (`pipx install .` or `uv tool install .` in the checkout; see {INSTALL_DOC}) "
        "and run this command again with that clavis-mcp, or choose the program with --command PATH"
    )


def _same(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def server_entry(executable: Path, home: Path) -> dict[str, Any]:
    """The ``mcpServers`` entry: our executable, no arguments (stdio), and the vault it must use."""
    return {"command": str(executable), "args": [], "env": {"CLAVIS_HOME": str(home)}}


def parse_env_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` arguments of ``--env``; ConfigError naming the one that is malformed."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not ENV_NAME.fullmatch(key):
            raise ConfigError(f"--env {key if sep else pair!r}: expected KEY=VALUE with KEY a variable name, "
                              "e.g. --env CLAVIS_CALL_TIMEOUT=45")  # fmt: skip
        env[key] = value
    return env


def merge_entry(old: object, new: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``new`` laid over the existing entry: keys and environment variables the user added are kept.

    The changes are described by name only: an environment value may be a passphrase.
    """
    if not isinstance(old, dict):
        return new, ("added the entry",)
    merged = {**old, **new}
    found = old.get("env")
    old_env: dict[str, Any] = found if isinstance(found, dict) else {}
    merged["env"] = {**old_env, **new.get("env", {})}
    changes = []
    if old.get("command") != merged["command"]:
        changes.append(f"command {old.get('command')!r} -> {merged['command']!r}")
    if old.get("args") != merged.get("args"):
        changes.append("args reset to none (stdio)")
    for key, value in new.get("env", {}).items():
        if key not in old_env:
            changes.append(f"env {key} added")
        elif old_env[key] != value:
            changes.append(f"env {key} changed")
    kept = [key for key in old_env if key not in new.get("env", {})]
    if kept and changes:
        changes.append("kept env " + ", ".join(kept))
    return merged, tuple(changes)


def read_config(path: Path) -> dict[str, Any]:
    """The parsed file, ``{}`` if it does not exist; ConfigError naming the line and column if it is broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; "
            "fix it (often a trailing comma) and run this again; nothing was changed"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a JSON object at the top level; nothing was changed")
    servers = config.get("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f'"mcpServers" in {path} must be a JSON object; nothing was changed')
    return config


def install_entry(path: Path, entry: dict[str, Any], name: str = SERVER_NAME) -> Installed:
    """Add or update ``mcpServers[name]`` (merged, see merge_entry); keep everything else; back up, then
    replace atomically."""
    existed = path.exists()
    config = read_config(path)
    servers = config.setdefault("mcpServers", {})
    merged, changes = merge_entry(servers.get(name), entry)
    if servers.get(name) == merged:
        return Installed(path, created=False, changed=False, backup=None)
    servers[name] = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if existed:
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.bak")
        shutil.copy2(path, backup)
    _replace(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return Installed(path, created=not existed, changed=True, backup=backup, changes=changes)


def _replace(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
