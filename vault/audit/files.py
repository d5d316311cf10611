"""The audit log on disk: the live file, its rotated predecessors, and the append lock.

The live file is ``audit.jsonl``. When the next record would take it past the size limit it
is renamed ``audit.jsonl.<n>`` (1 is the oldest) and a new live file starts; the chain runs
on across the files. A file's number never changes (the live file's number is the one it
will get when it is rotated), so a position ``(number, byte offset)`` stays valid: the
review index relies on that. Appends from every process are serialised with ``flock`` on
``audit.jsonl.lock``, so the chain has one order even with several writers; that file also
holds the sealed checkpoint of the log's end (the vault holds the high-water mark, see
:mod:`vault.audit_anchor`).

Space for records is reserved before a request leaves: ``.audit.jsonl.reserve`` is a file of
``RESERVE_BYTES`` allocated blocks. A record that meets a full disk gives that file's space
back and is written in it; the next check before a request then cannot allocate the reserve
again and refuses, so a request that passed the check always finds room for its record.
A record torn by a failed write (half a line, no newline) is cut off by the next append, which
notes it in the record it writes (:data:`REPAIRED`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

_CHUNK = 8192
_KEPT_MAX = 1 << 20  # a torn tail longer than this is no record of ours: cut, never read whole
RESERVE_BYTES = 1024 * 1024  # room for ~2,500 records in flight when the disk fills up
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class LogFiles:
    live: Path
    # Guards the held reserve: threads that check, give back and close share one handle.
    _reserve_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @cached_property  # built once: the proxy asks for both on every request
    def lock_path(self) -> Path:
        return self.live.with_name(self.live.name + ".lock")

    @cached_property
    def reserve_path(self) -> Path:
        return self.live.with_name(f".{self.live.name}.reserve")  # zeros only: hidden, and out of log sweeps

    @cached_property
    def _held_reserve(self) -> list[int]:
        """[fd] of the reserve file while this object holds it whole; a list so the finalizer can close it."""
        held: list[int] = []
        weakref.finalize(self, _close, held)
        return held

    def reserve(self) -> None:
        """Hold ``RESERVE_BYTES`` of allocated space for records; OSError (ENOSPC) if the disk
        cannot give it.

        The reserve file is kept open once whole, so the check before each request is one
        ``fstat`` of the file held, not a path lookup. Given back by any process (the same file,
        truncated), it reads as such at once; deleted or replaced meanwhile, the file held still
        holds its blocks, which :meth:`release_reserve` gives back through it."""
        held = self._held_reserve
        with self._reserve_lock:
            if held and os.fstat(held[0]).st_size >= RESERVE_BYTES:
                return
            _close(held)
            fd = os.open(self.reserve_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            except OSError:
                os.ftruncate(fd, 0)  # a half-allocated reserve must not read as whole
                os.close(fd)
                raise
            held.append(fd)

    def release_reserve(self) -> bool:
        """Give the reserved space back to the file system, for a record that met a full disk:
        the file held, else the one the path names now."""
        held = self._held_reserve
        with self._reserve_lock:
            if held and os.fstat(held[0]).st_size:
                os.ftruncate(held[0], 0)
                return True
        try:
            if os.stat(self.reserve_path).st_size == 0:
                return False
            os.truncate(self.reserve_path, 0)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        """Let go of the reserve file (its space stays reserved on disk)."""
        with self._reserve_lock:
            _close(self._held_reserve)

    def rotated(self) -> list[tuple[int, Path]]:
        """Rotated files, oldest first."""
        pattern = re.compile(re.escape(self.live.name) + r"\.([0-9]+)$")
        found = []
        try:
            names = os.listdir(self.live.parent)
        except FileNotFoundError:
            return []
        for name in names:
            match = pattern.match(name)
            if match:
                found.append((int(match.group(1)), self.live.parent / name))
        return sorted(found)

    def live_number(self, rotated: list[tuple[int, Path]] | None = None) -> int:
        rotated = self.rotated() if rotated is None else rotated
        return rotated[-1][0] + 1 if rotated else 1

    def numbered(self) -> list[tuple[int, Path]]:
        """Every file of the log in chain order, with its number."""
        rotated = self.rotated()
        return [*rotated, (self.live_number(rotated), self.live)]

    def open(self, number: int) -> BinaryIO | None:
        """Open file ``number`` for reading, even while it is being rotated; None if it is gone."""
        rotated = self.live.with_name(f"{self.live.name}.{number}")
        try:
            return rotated.open("rb")
        except FileNotFoundError:
            pass
        try:
            handle = self.live.open("rb")
        except FileNotFoundError:
            return None
        if self.live_number() != number:
            # The live file we opened may be a later one, or ours was rotated since: only
            # the rotated name is certain now.
            handle.close()
            try:
                return rotated.open("rb")
            except FileNotFoundError:
                return None
        return handle

    @contextmanager
    def probed(self) -> Iterator[int]:
        """Raise OSError if the live file or the lock file cannot be opened as an append opens
        them; yields the lock file's descriptor, unlocked, to read the checkpoint from."""
        os.close(os.open(self.live, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            yield fd
        finally:
            os.close(fd)

    def last_line(self) -> bytes | None:
        """The newest complete record line of the whole log, or None if it has none."""
        for number, _ in reversed(self.numbered()):
            handle = self.open(number)
            if handle is None:
                continue
            with handle:
                line = _last_line(handle)
            if line is not None:
                return line
        return None


_process = [os.getpid()]  # this process's id, set again in a forked child by the one hook below
os.register_at_fork(after_in_child=lambda: _process.__setitem__(0, os.getpid()))


def process_id() -> int:
    """This process's id without a ``getpid`` system call (the fork hook above keeps it)."""
    return _process[0]


class AppendLock:
    """This process's handle on the cross-process append lock, kept open between records; as a
    context manager it holds the lock and gives the lock file's descriptor (the checkpoint is
    kept in that file, see :mod:`vault.audit_anchor`). Use it under the log's thread lock:
    ``flock`` on one open file keeps other processes out, not this process's other threads.

    Opening and closing the file for each record cost a path lookup and two system calls on the
    proxy's path; holding it open costs one ``stat`` once locked, to be sure the path still names
    the file held: a lock file deleted or replaced meanwhile is one another process may lock at
    the same time, so it is then opened again and locked anew. A forked child drops the handle
    it inherited (the process id it was opened in is kept, and compared with :data:`_process`,
    which one fork hook for the whole module keeps current: no ``getpid`` system call per record):
    one open file is one ``flock`` holder, so parent and child would not exclude each other through it.
    """

    def __init__(self, path: Path) -> None:
        self._path = os.fspath(path)
        self._handle: list[int] = []  # [fd, device, inode, pid] while open; a list so the finalizer can close it
        weakref.finalize(self, _close, self._handle)

    def __enter__(self) -> int:
        if self._handle and self._handle[3] != _process[0]:
            _close(self._handle)  # inherited through a fork: this process opens its own
        while True:
            if not self._handle:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                opened = os.fstat(fd)
                self._handle[:] = [fd, opened.st_dev, opened.st_ino, _process[0]]
            fd = self._handle[0]
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                found = os.stat(self._path)
            except FileNotFoundError:
                found = None
            except BaseException:
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise
            if found is not None and found.st_dev == self._handle[1] and found.st_ino == self._handle[2]:
                return fd
            _close(self._handle)  # closing releases the lock on a file that is no longer the lock file

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._handle[0], fcntl.LOCK_UN)

    def close(self) -> None:
        _close(self._handle)


class LiveFile:
    """This process's handle on the live file, kept open between records (use with the lock held).

    A record then costs one ``stat`` (is the live file still the one we hold, and how long is
    it?) and one ``write``, where opening, checking and closing the file each time cost eleven
    system calls on the proxy's path. Once ``write`` returns the record is the kernel's: it
    survives a crash of this process. No ``fsync`` per record: it would add a disk round trip to
    every proxied request. A power loss can therefore drop the newest records, which ``verify``
    then reports as a cut end against the checkpoint: an alarm, never a silent loss. What the
    vault's high-water mark vouches for is synced first (:meth:`sync`), and a file is synced
    before it is rotated, so a power loss never leaves the mark above the records on disk.
    """

    def __init__(self, files: LogFiles) -> None:
        self._files = files
        self._path = os.fspath(files.live)  # stat'ed twice per request: converted once
        self._handle: list[int] = []  # [fd, inode] while open; a list so the finalizer can close it
        weakref.finalize(self, _close, self._handle)

    def state(self) -> tuple[int, int] | None:
        """``(inode, size)`` of the live file now, or None if there is none."""
        try:
            stat = os.stat(self._path)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_size

    def repair(self, state: tuple[int, int] | None, keep: Callable[[bytes], bool] | None = None) -> int:
        """Cut a torn last line (a failed append: no newline at the end) off the live file whose
        ``state`` was just read; return how many bytes were cut (0: the file ends cleanly, or the
        tail is left for :meth:`write` to finish with a newline). ``keep`` is asked about a tail
        of at most ``_KEPT_MAX`` bytes: true when it is a whole genuine record that only lost its
        newline (removed on purpose, say), whose content cutting would destroy."""
        if state is None or not state[1]:
            return 0
        fd, _ = self._open(state)
        size = state[1]
        if os.pread(fd, 1, size - 1) == b"\n":
            return 0
        end = size
        while end > 0:
            start = max(0, end - _CHUNK)
            found = os.pread(fd, end - start, start).rfind(b"\n")
            if found >= 0:
                end = start + found + 1
                break
            end = start
        if keep is not None and size - end <= _KEPT_MAX and keep(os.pread(fd, size - end, end)):
            return 0
        os.ftruncate(fd, end)
        return size - end

    def write(self, line: bytes, state: tuple[int, int] | None, max_bytes: int, *, clean_end: bool) -> tuple[int, int]:
        """Append ``line`` to the live file whose ``state`` was just read (its torn tail, if any,
        already cut by :meth:`repair`), rotating it first if the line would take it past
        ``max_bytes``; return its new state. ``clean_end``: the file is as this process left it.
        A full disk is met by giving back the reserve (see the module docstring) once."""
        if state is not None and state[1] and state[1] + len(line) > max_bytes:
            self._rotate()
            state = None
        fd, inode = self._open(state)
        size = state[1] if state is not None else os.fstat(fd).st_size
        if size and not clean_end and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        written, released = 0, False
        while written < len(line):
            try:
                written += os.write(fd, line[written:])
            except OSError as exc:
                if exc.errno not in _FULL or released or not self._files.release_reserve():
                    raise
                released = True
        return inode, size + len(line)

    def sync(self, *, folder: bool) -> None:
        """Make every record written through this handle durable; ``folder``: the file's name too
        (a new live file, or one just rotated)."""
        if self._handle:
            os.fsync(self._handle[0])
        if folder:
            _fsync_path(self._files.live.parent, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        _close(self._handle)

    def _rotate(self) -> None:
        live = self._files.live
        _fsync_path(live, os.O_RDONLY)  # its records, written by any process, before it stops growing
        os.rename(live, live.with_name(f"{live.name}.{self._files.live_number()}"))

    def _open(self, state: tuple[int, int] | None) -> tuple[int, int]:
        if self._handle and state is not None and state[0] == self._handle[1]:
            return self._handle[0], self._handle[1]
        _close(self._handle)
        fd = os.open(self._files.live, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._handle[:] = [fd, os.fstat(fd).st_ino]
        return fd, self._handle[1]


def _fsync_path(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _close(handle: list[int]) -> None:
    if handle:
        os.close(handle[0])
        handle.clear()


def lines_from(handle: BinaryIO, offset: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, line)`` for each complete line from ``offset`` on; a torn last line is left out."""
    handle.seek(offset)
    for line in handle:
        if not line.endswith(b"\n"):
            return
        if line.strip():
            yield offset, line
        offset += len(line)


def _last_line(handle: BinaryIO) -> bytes | None:
    end = handle.seek(0, os.SEEK_END)
    data = b""
    position = end
    while position > 0:
        step = min(_CHUNK, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        lines = data.split(b"\n")
        # lines[-1] is what follows the last newline: empty for a clean end, else a torn line.
        candidates = lines[1:-1] if position > 0 else lines[:-1]  # lines[0] may be cut short
        complete = [line for line in candidates if line.strip()]
        if complete:
            return complete[-1]
    return None
