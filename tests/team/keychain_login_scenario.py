"""`clavis-mcp login` inside `dbus-run-session` with a real gnome-keyring (see test_client_keychain.py).

Not collected by pytest (no test_ prefix): run in a child process whose HOME and session bus are
throwaway; prints one JSON object with what it observed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import keyring
from click.testing import CliRunner

from clavis_mcp.clavis_cli.main import main
from clavis_mcp.mcp_front.team_session import KEYCHAIN_SERVICE, load_session
from clavis_mcp.vault.keys.keychain import real_keychain

if __name__ == "__main__":
    url, email, home = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    os.environ["CLAVIS_HOME"] = str(home)
    password = sys.stdin.readline()
    result = CliRunner().invoke(main, ["login", "--url", url, "--email", email, "--password-stdin"], input=password)
    session = load_session(url)
    stored = keyring.get_password(KEYCHAIN_SERVICE, url)
    files = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file()) if home.exists() else b""
    token = session.token.reveal() if session else ""
    print(json.dumps({
        "exit": result.exit_code,
        "backend": type(real_keychain()).__module__,
        "where": session.where if session else None,
        "in_keychain": stored is not None and bool(token) and token in stored,
        "token_in_files": bool(token) and token.encode() in files,
        "said_keychain": "kept in keychain" in result.output,
    }))  # fmt: skip
