"""Whether the vault changed, read from SQLite's WAL-index header instead of asked with a statement.

In WAL mode every commit, by any connection of any process and any clavis-mcp version (a hand-made
change with the ``sqlite3`` shell too), is published in the header of the WAL index, the ``-shm``
file beside the database (https://www.sqlite.org/walformat.html): readers elsewhere find the new
frames only through it, and its change counter moves with each commit. So while its 48 bytes read
the same (counter, frame count, salts, checksum), nothing was committed, and the store may answer
"no change" from a read-only shared mapping (~0.1 us) instead of ``PRAGMA data_version``, whose
read transaction costs a statement and two ``fcntl`` calls (20-25 us a call in the running proxy).

A view is only a hint: the store caches an answer only when the header (both copies) read the
same before and after the statement that gave it, takes it while both copies still read so (a
writer killed between its two copies leaves copy [0] as it was: every other reader then recovers
its commit, and so does the statement), and for at most ``QUIET_SECONDS`` (sqlite.py) whatever
the header says. The file is found as SQLite finds it (beside the database's real path, a link
followed) and must be in use by some SQLite connection (a lock on its dead-man byte): a leftover
file beside a link is no one's, and its unchanging header would hide every change. Anything
unusual here (no such file, not a regular private file of ours, too short, locked by no one, not
open in this process's SQLite, no ``/proc/self/fd``, ``mmap`` or open-file-description locks, a
header in a form this code does not know, a store a forked child inherited) means no view, and the
statement every time, as before. (A store the child opens itself gets a view as any store does: what
SQLite inherits across a fork is already unsafe to use, SQLite's own docs say, view or no view.)

POSIX record locks belong to the process and the file: closing *any* descriptor of the ``-shm``
file drops every lock SQLite holds on it in this process (its readers' marks, the lock that stops
another process from re-initialising the file), a plain ``sqlite3`` connection's as much as a
store's. So this module opens and closes no descriptor of it: the mapping is made through the one
SQLite's own connection holds (found in ``/proc/self/fd``), which stays open while the store that
attached uses the file, and a mapping made with ``trackfd=False`` needs no descriptor afterwards.
One view per file, shared by this process's stores, unmapped after the last one detached.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat
import struct
import sys
import threading
from pathlib import Path

HEADER = 48  # one copy of the WAL-index header; SQLite keeps two and writes the second first
_KNOWN = (3007000).to_bytes(4, sys.byteorder)  # iVersion, in the native order SQLite writes
_DEAD_MAN = 128  # the byte of the -shm file every connection using it holds a shared lock on (os_unix.c)


class WalIndex:
    """A read-only mapping of one ``-shm`` file's headers, shared by this process's stores on it."""

    def __init__(self, key: tuple[int, int], shm: os.stat_result) -> None:
        self.key = key  # the database file's, as SQLite shares one WAL index per database in a process
        self.file = (shm.st_dev, shm.st_ino)
        self.users = 0
        self.map = _map(self.file)

    def header(self) -> bytes | None:
        """Both copies of the header, or None while a commit is writing them or in a form this code
        does not know."""
        view = self.map
        if view is None:
            return None
        both = view[: 2 * HEADER]
        first = both[:HEADER]
        if first != both[HEADER:] or first[:4] != _KNOWN or first[12] != 1:  # iVersion, isInit
            return None
        return both

    def reads(self, header: bytes) -> bool:
        """Whether both copies still read ``header``. Both: a writer killed after it wrote part of
        copy [1] leaves copy [0] as it was, and every other reader then finds the copies unequal
        and recovers the commit from the WAL; so must this one (the statement does)."""
        view = self.map
        return view is not None and view[: 2 * HEADER] == header


def _map(file: tuple[int, int]) -> mmap.mmap | None:
    """The file's two headers mapped through SQLite's own descriptor of it: one of ours would,
    once closed, drop the process's SQLite locks on the file."""
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                fd = int(name)
                info = os.fstat(fd)
            except OSError:  # closed since the listing (the listing's own, for one)
                continue
            if (info.st_dev, info.st_ino) != file:
                continue
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.geteuid()
                or info.st_mode & 0o077
                or info.st_size < 2 * HEADER
                or not _in_use(fd)
            ):
                return None
            view = mmap.mmap(fd, 2 * HEADER, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, trackfd=False)
            again = os.fstat(fd)  # a number closed and reused since the checks names another file
            if (again.st_dev, again.st_ino) != file:
                view.close()
                return None
            return view
    except (OSError, ValueError):
        pass
    return None


def _in_use(fd: int) -> bool:
    """Whether some SQLite connection holds this file as its WAL index: each keeps a shared lock
    on its dead-man byte while it has the file open. A leftover file beside a link to the
    database, or any other file nobody's SQLite uses, holds none, and its unchanging header would
    otherwise read as "nothing changed" for ever. Asked with an open-file-description lock test
    (Linux), which sees this process's own POSIX locks too."""
    probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, _DEAD_MAN, 1, 0)
    try:
        found = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
    except OSError:
        return False
    held: int = struct.unpack("hhqqi4x", found)[0]
    return held != fcntl.F_UNLCK


_views: dict[tuple[int, int], WalIndex] = {}
_views_lock = threading.Lock()


def attach(db_path: Path) -> WalIndex | None:
    """The view of ``db_path``'s WAL index, for a store whose connection has it open in WAL mode
    (its shared lock then keeps the file from being re-initialised while the view is in use).
    ``db_path`` is the file the connection opened, as SQLite names it (``PRAGMA database_list``):
    a link repointed between the connection and this call cannot send the view elsewhere."""
    if os.name != "posix" or not hasattr(mmap, "MAP_SHARED") or not hasattr(fcntl, "F_OFD_GETLK"):
        return None
    db_path = Path(os.path.realpath(db_path))  # (the store gives the file SQLite opened: a link already followed)
    path = db_path.with_name(db_path.name + "-shm")
    with _views_lock:
        try:
            db = os.stat(db_path)
            shm = os.lstat(path)
        except OSError:
            return None
        view = _views.get((db.st_dev, db.st_ino))
        if view is None:
            # kept even unmapped: a later store must not map a file other than the one judged here
            view = WalIndex((db.st_dev, db.st_ino), shm)
            _views[view.key] = view
        elif view.file != (shm.st_dev, shm.st_ino):
            return None  # the file was replaced, or a store left open held a database gone since
        view.users += 1
        return view


def detach(view: WalIndex) -> None:
    """Called after the store's connection closed: the last user unmaps the file."""
    with _views_lock:
        view.users -= 1
        if view.users:
            return
        if _views.get(view.key) is view:
            del _views[view.key]
        if view.map is not None:
            view.map.close()
            view.map = None


def _forget_in_child() -> None:
    """A forked child's inherited stores answer with statements: it holds none of its parent's SQLite locks, so the
    file may be re-initialised under an inherited mapping."""
    global _views_lock
    _views_lock = threading.Lock()  # another thread may have held it at the fork
    for view in _views.values():
        view.map = None
    _views.clear()


os.register_at_fork(after_in_child=_forget_in_child)
