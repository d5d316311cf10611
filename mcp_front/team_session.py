"""The team login `clavis-mcp login` keeps, one per server URL: a JWT and its expiry.

Kept in the OS keychain when a real one is reachable (the vault's rule: plaintext and null
``keyring`` backends are refused), else in a 0600 file under the clavis-mcp home, as the key
file store does. The password is never stored: the team client trades a login close to its expiry for a new
one (``POST /v1/auth/refresh``, team_client.py) and stores it here in place of the old one; a
session ends 30 days after the password login, or 24 hours after its last use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import keyring.errors

from clavis_mcp.vault import Secret, clavis_home
from clavis_mcp.vault.errors import KeyStoreUnavailable
from clavis_mcp.vault.keys.keychain import real_keychain

KEYCHAIN_SERVICE = "clavis-mcp-team"
FILE_NAME = "team-sessions.json"


@dataclass(frozen=True, slots=True)
class Session:
    url: str
    email: str
    token: Secret
    expires_at: float
    where: str  # "keychain" or the file's path


def _file() -> Path:
    return clavis_home() / FILE_NAME


def _read_file() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parse(url: str, raw: object, where: str) -> Session | None:
    if not isinstance(raw, dict):
        return None
    token, email, expires = raw.get("token"), raw.get("email"), raw.get("expires_at")
    if not isinstance(token, str) or not isinstance(email, str) or not isinstance(expires, int | float):
        return None
    return Session(url, email, Secret(token), float(expires), where)


def load_session(url: str) -> Session | None:
    try:
        stored = real_keychain().get_password(KEYCHAIN_SERVICE, url)
    except (KeyStoreUnavailable, keyring.errors.KeyringError):
        stored = None
    if stored is not None:
        try:
            return _parse(url, json.loads(stored), "keychain")
        except ValueError:
            return None
    return _parse(url, _read_file().get(url), str(_file()))


def save_session(url: str, email: str, token: Secret, expires_at: float) -> str:
    """Store the login; return where it went ("keychain" or the file's path)."""
    record = {"email": email, "token": token.reveal(), "expires_at": expires_at}
    try:
        real_keychain().set_password(KEYCHAIN_SERVICE, url, json.dumps(record))
        return "keychain"
    except (KeyStoreUnavailable, keyring.errors.KeyringError):
        pass
    sessions = _read_file()
    sessions[url] = record
    return _write_file(sessions)


def _write_file(sessions: dict[str, dict[str, object]]) -> str:
    """Replace the file with ``sessions`` (0600, in one rename); return its path."""
    path = _file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(sessions, out)
    os.replace(temp, path)
    return str(path)


def forget_session(url: str) -> bool:
    """Remove the stored login for ``url`` from the keychain and the file; whether there was one."""
    found = False
    try:
        real_keychain().delete_password(KEYCHAIN_SERVICE, url)
        found = True
    except (KeyStoreUnavailable, keyring.errors.KeyringError):  # none there (PasswordDeleteError), or no keychain
        pass
    sessions = _read_file()
    if sessions.pop(url, None) is not None:
        found = True
        _write_file(sessions)
    return found
