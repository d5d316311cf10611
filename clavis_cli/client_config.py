"""Claude Desktop's configuration file: where it is, and adding our entry without harming the rest.

The file belongs to the user and to other MCP servers. We change one key
(``mcpServers.clavis``), keep every other key and its order, keep a timestamped backup of
what was there, and replace the file atomically, so a crash leaves the old file or the new
one. A file that is not valid JSON is never touched: the error names the line and column.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clavis_mcp.vault.errors import ConfigError

SERVER_NAME = "clavis"
CONFIG_NAME = "claude_desktop_config.json"


@dataclass(frozen=True, slots=True)
class Installed:
    path: Path
    created: bool  # the file did not exist
    changed: bool  # the entry was added or differed
    backup: Path | None


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


def server_entry(executable: Path, home: Path) -> dict[str, Any]:
    """The ``mcpServers`` entry: our executable, no arguments (stdio), and the vault it must use."""
    return {"command": str(executable), "args": [], "env": {"CLAVIS_HOME": str(home)}}


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
    """Add or update ``mcpServers[name]``; keep everything else; back up, then replace atomically."""
    existed = path.exists()
    config = read_config(path)
    servers = config.setdefault("mcpServers", {})
    if servers.get(name) == entry:
        return Installed(path, created=False, changed=False, backup=None)
    servers[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if existed:
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}.bak")
        shutil.copy2(path, backup)
    _replace(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return Installed(path, created=not existed, changed=True, backup=backup)


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
