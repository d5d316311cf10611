"""Serving the page: a socket on 127.0.0.1 only, a fresh token per run, uvicorn without access logs.

The token reaches the browser in a URL's fragment, which no request carries; the access log stays
off all the same (a page's query holds what the user filters on). A browser we start is never
given the token, nor anything that could be traded for it, on its command line, which every
local user can read (``ps``): it is given a file of ours, readable by us alone, that sends it on.
"""

from __future__ import annotations

import html
import os
import secrets
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from .app import build_app
from .approvals import ApprovalDesk
from .source import AuditSource

HOST = "127.0.0.1"


def bind(port: int) -> socket.socket:
    """A listening socket on the loopback; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {HOST}:{port} ({exc.strerror}): choose another --port, or 0") from None
    sock.listen(64)
    return sock


@dataclass(frozen=True, slots=True)
class Page:
    port: int
    token: str

    @property
    def url(self) -> str:
        """What the user opens (again, for a new tab): the token in the fragment, never sent to the server."""
        return f"http://{HOST}:{self.port}/#token={self.token}"

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"


def server_for(page: Page, source: AuditSource, desk: ApprovalDesk | None = None) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(source, page.token, desk),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    return uvicorn.Server(config)


def new_token() -> str:
    return secrets.token_urlsafe(32)


@contextmanager
def running(source: AuditSource, port: int = 0) -> Iterator[Page]:
    """The page served from a thread until the block ends (tests, and anything embedding it)."""
    sock = bind(port)
    page = Page(sock.getsockname()[1], new_token())
    desk = ApprovalDesk(source.home, source.vault, source.vault_lock)
    server = server_for(page, source, desk)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.02)
        yield page
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        desk.close()


@contextmanager
def launch_file(page: Page) -> Iterator[Path]:
    """A 0600 HTML file in a 0700 folder of ours that sends a browser to the page's tokened URL.

    A browser's command line names only this file; another user can read neither it nor its
    folder. It is removed when the block ends; left behind (a crash), it is harmless: the token
    dies with the page. The folder is ``$XDG_RUNTIME_DIR/clavis-mcp`` when that is ours (per user,
    0700, in memory, emptied at logout: the place for such files), else a fresh private temporary
    folder (``mkdtemp`` creates it 0700 under a random name no one can have made first), removed
    with the file. Not the vault's home: it may be synced or backed up.
    """
    folder, made = _runtime_folder(), False
    if folder is None:
        folder, made = Path(tempfile.mkdtemp(prefix="clavis-mcp-ui-")), True
    path = folder / f"open-{page.port}-{secrets.token_hex(8)}.html"
    target = html.escape(page.url)
    text = (
        f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
        f'<title>clavis-mcp</title></head><body><p><a href="{target}">Open the clavis-mcp page</a></p></body></html>\n'
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        yield path
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _runtime_folder() -> Path | None:
    """``$XDG_RUNTIME_DIR/clavis-mcp``, made 0700, if it is a real folder of ours; else None."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not os.path.isabs(runtime):
        return None
    folder = Path(runtime) / "clavis-mcp"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        folder.chmod(0o700)
    except OSError:
        return None
    return folder
