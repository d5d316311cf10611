"""The store's "nothing changed" answer from the WAL-index header: every commit by another process
is seen by the next ``changes()``, whoever wrote it and however the writer ended.

Real files and real child processes (spawned), as the proxy, the MCP server and the CLI share a vault.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from clavis_mcp.vault.storage import walindex
from clavis_mcp.vault.storage.sqlite import QUIET_SECONDS, SQLiteStore

pytestmark = pytest.mark.e2e
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "vault.db"
    SQLiteStore.create(path, {"vault_id": "test"}).close()
    return path


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore.open(db)
    yield opened
    opened.close()


def quiet(store: SQLiteStore) -> int:
    """The counter, after checking that the store now answers from the header (no statement)."""
    counter = store.changes()
    assert store._quiet is not None and store._quiet[1] == counter
    return store.changes()


def bump(db: str, how: str) -> None:
    """One committed change by another process: through a store, or by hand with plain sqlite3."""
    if how == "store":
        store = SQLiteStore.open(Path(db))
        with store.atomic() as batch:
            batch.put("agent", "a", {"n": 1})
        store.close()
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT OR REPLACE INTO services (name, definition, updated_at) VALUES ('s', '{}', 0)")


def run(target: object, *args: object) -> int | None:
    child = SPAWN.Process(target=target, args=args)
    child.start()
    child.join(timeout=60)
    return child.exitcode


@pytest.mark.parametrize("how", ["store", "sqlite3"], ids=["clavis-writer", "hand-made-change"])
def test_a_commit_by_another_process_is_seen_by_the_next_changes(store: SQLiteStore, db: Path, how: str) -> None:
    for _ in range(3):
        before = quiet(store)
        assert run(bump, str(db), how) == 0
        assert store.changes() == before + 1


def killed_before_commit(db: str) -> None:
    store = SQLiteStore.open(Path(db))
    with store.atomic() as batch:
        batch.put("agent", "a", {"n": 2})
        os.kill(os.getpid(), signal.SIGKILL)


def killed_after_commit(db: str) -> None:
    store = SQLiteStore.open(Path(db))
    with store.atomic() as batch:
        batch.put("agent", "a", {"n": 3})
    os._exit(0)  # no close, no checkpoint


def test_a_writer_killed_before_its_commit_changes_nothing_and_the_next_one_is_seen(
    store: SQLiteStore, db: Path
) -> None:
    before = quiet(store)
    assert run(killed_before_commit, str(db)) == -signal.SIGKILL
    assert store.changes() == before
    assert run(bump, str(db), "store") == 0
    assert store.changes() == before + 1


def test_a_writer_that_dies_right_after_its_commit_is_seen(store: SQLiteStore, db: Path) -> None:
    before = quiet(store)
    assert run(killed_after_commit, str(db)) == 0
    assert store.changes() == before + 1
    assert quiet(store) == before + 1


def test_own_commits_are_seen_at_once(store: SQLiteStore) -> None:
    before = quiet(store)
    with store.atomic() as batch:
        batch.put("agent", "a", {"n": 4})
    assert store.changes() == before + 1


def test_a_vault_whose_files_others_could_read_gets_no_view_and_still_sees_every_change(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    path.touch(mode=0o640)  # SQLite gives the -shm file the database's mode
    SQLiteStore.create(path, {"vault_id": "test"}).close()
    store = SQLiteStore.open(path)
    try:
        assert store._wal_index is not None and store._wal_index.map is None
        before = store.changes()
        assert run(bump, str(path), "store") == 0
        assert store.changes() == before + 1
        assert store._quiet is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda shm: None,
        lambda shm: shm.mkdir(),
        lambda shm: shm.symlink_to(shm.with_name("elsewhere")),
        lambda shm: shm.write_bytes(b"\0" * 95),
        lambda shm: (shm.write_bytes(b"\0" * 32768), shm.chmod(0o644)),
        lambda shm: (shm.write_bytes(b"\0" * 32768), shm.chmod(0o600)),
    ],
    ids=["missing", "folder", "symlink", "truncated", "readable-by-others", "unknown-format"],
)
def test_a_doubtful_wal_index_file_gives_no_header(tmp_path: Path, make: object) -> None:
    db = tmp_path / "vault.db"
    db.touch(mode=0o600)
    shm = tmp_path / "vault.db-shm"
    shm.with_name("elsewhere").write_bytes(b"\0" * 32768)
    make(shm)  # type: ignore[operator]
    view = walindex.attach(db)
    try:
        assert view is None or view.header() is None
    finally:
        if view is not None:
            walindex.detach(view)


def test_a_replaced_wal_index_file_is_not_mapped_by_a_later_store(store: SQLiteStore, db: Path) -> None:
    shm = db.with_name("vault.db-shm")
    copy = db.with_name("copy")
    copy.write_bytes(shm_bytes(shm))
    copy.chmod(0o600)
    copy.rename(shm)  # this process's SQLite keeps using the file it opened, and so does the view
    other = SQLiteStore.open(db)
    try:
        assert other._wal_index is None and store._wal_index is not None
        assert store._wal_index.file != (shm.stat().st_dev, shm.stat().st_ino)
    finally:
        other.close()


def test_stores_sharing_a_view_keep_it_until_the_last_one_closes(store: SQLiteStore, db: Path) -> None:
    other = SQLiteStore.open(db)
    view = store._wal_index
    assert view is not None and other._wal_index is view and view.users == 2
    other.close()
    assert view.map is not None
    before = quiet(store)
    assert run(bump, str(db), "store") == 0
    assert store.changes() == before + 1


def forked(db: str) -> None:
    """In a spawned (single-threaded) process: a store in use, then a fork that uses it too."""
    store = SQLiteStore.open(Path(db))
    before = quiet(store)
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit code
        code = 1
        try:
            assert store._wal_index is not None and store._wal_index.map is None
            bump(db, "store")
            assert store.changes() == before + 1
            own = SQLiteStore.open(Path(db))
            assert quiet(own) == before + 1
            bump(db, "sqlite3")
            assert own.changes() == before + 2
            own.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.changes() == before + 2
    assert quiet(store) == before + 2
    store.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_answers_with_statements_and_sees_every_change(db: Path) -> None:
    assert run(forked, str(db)) == 0


def commit_and_tell(db: str, commits: int, told: Connection) -> None:
    store = SQLiteStore.open(Path(db))
    for i in range(1, commits + 1):
        with store.atomic() as batch:
            batch.put("agent", "a", {"n": i})
        told.send(i)  # after the commit returned: from here on every reader must see it
    store.close()


def test_a_reader_polling_while_another_process_commits_never_answers_behind_a_finished_commit(
    store: SQLiteStore, db: Path
) -> None:
    base, commits = quiet(store), 300
    ours, theirs = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(target=commit_and_tell, args=(str(db), commits, theirs))
    child.start()
    done, last, polls = 0, base, 0
    while done < commits:
        while ours.poll():
            done = ours.recv()
            assert store.changes() >= base + done  # the next answer after a finished commit
        counter = store.changes()
        assert last <= counter <= base + commits
        last, polls = counter, polls + 1
    child.join(timeout=60)
    assert child.exitcode == 0 and store.changes() == base + commits
    assert polls > commits


def shm_bytes(path: str | Path) -> bytes:
    """The bytes of a -shm file, read in a process of its own: opening and closing it in this one
    would drop this process's SQLite locks on it (those of the stores under test)."""
    read = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read())"
    return subprocess.run([sys.executable, "-c", read, str(path)], capture_output=True, check=True).stdout


def write_at(path: str, data: bytes) -> None:
    """Write ``data`` at the start of ``path``, in a process of its own: closing a descriptor of a
    -shm file drops every SQLite lock on it in the process that closes it."""
    with open(path, "r+b") as file:
        file.write(data)


def test_a_header_torn_by_a_writer_killed_between_its_two_copies_is_not_taken_for_no_change(
    store: SQLiteStore, db: Path
) -> None:
    """A writer writes copy [1] of the header, then copy [0]; killed in between, it leaves copy [0]
    as before while its commit is in the WAL (every other reader finds the copies unequal and
    recovers it). The torn state is made here from a real commit by putting the old copy [0] back."""
    shm = str(db) + "-shm"
    before = quiet(store)
    old = shm_bytes(shm)[: walindex.HEADER]
    assert run(bump, str(db), "store") == 0
    assert run(write_at, shm, old) == 0
    assert shm_bytes(shm)[: walindex.HEADER] == old  # copy [0] as the store last saw it
    assert store.changes() == before + 1


def test_through_a_link_to_the_database_the_view_is_of_sqlites_own_wal_index(tmp_path: Path) -> None:
    """SQLite follows a link to the database and keeps its -shm beside the target; a leftover -shm
    beside the link (an unclean exit before the vault moved) is no one's, and its header never
    changes: it must not be mapped, or every later change would go unseen."""
    real = tmp_path / "real"
    real.mkdir()
    SQLiteStore.create(real / "vault.db", {"vault_id": "test"}).close()
    link = tmp_path / "vault.db"
    link.symlink_to(real / "vault.db")
    with_leftover = SQLiteStore.open(real / "vault.db")
    with_leftover.changes()
    (tmp_path / "vault.db-shm").write_bytes(shm_bytes(real / "vault.db-shm"))  # a valid-looking header
    (tmp_path / "vault.db-shm").chmod(0o600)
    with_leftover.close()
    store = SQLiteStore.open(link)
    try:
        before = quiet(store)  # the fast path works through the link, on the real file
        for _ in range(3):
            assert run(bump, str(real / "vault.db"), "store") == 0
            before += 1
            assert store.changes() == before
    finally:
        store.close()


def test_a_file_no_sqlite_connection_uses_gives_no_view(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    SQLiteStore.create(path, {"vault_id": "test"}).close()
    opened = SQLiteStore.open(path)
    opened.changes()
    copy = shm_bytes(tmp_path / "vault.db-shm")
    opened.close()
    other = tmp_path / "other.db"
    other.write_bytes(path.read_bytes())
    (tmp_path / "other.db-shm").write_bytes(copy)  # a header SQLite would accept, locked by no one
    (tmp_path / "other.db-shm").chmod(0o600)
    view = walindex.attach(other)
    assert view is not None and view.header() is None  # opened (kept, as any view), never mapped
    walindex.detach(view)


def test_a_change_the_header_check_missed_is_seen_within_the_bound(
    store: SQLiteStore, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the header check to miss a commit (none is known), the statement
    asks SQLite again once the cached answer is QUIET_SECONDS old, so nothing stays unseen for
    the life of the process."""
    before = quiet(store)
    monkeypatch.setattr(walindex.WalIndex, "reads", lambda self, header: True)  # a check that misses all
    assert run(bump, str(db), "store") == 0
    deadline = time.monotonic() + 10 * QUIET_SECONDS + 5
    while store.changes() == before and time.monotonic() < deadline:
        time.sleep(QUIET_SECONDS / 5)
    assert store.changes() == before + 1


def report_locks(shm: str, told: Connection) -> None:
    """In a process of its own: which lock bytes of the -shm file (120-127, and 128, the dead-man
    byte: os_unix.c) some other process holds a lock on. Its own descriptor, closed here, can drop
    no lock but its own process's."""
    fd = os.open(shm, os.O_RDONLY)
    try:
        held = []
        for byte in range(120, 129):
            probe = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
            if struct.unpack("hhqqi4x", fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe))[0] != fcntl.F_UNLCK:
                held.append(byte)
        told.send(held)
    finally:
        os.close(fd)


def locked_bytes(shm: Path) -> list[int]:
    ours, theirs = SPAWN.Pipe(duplex=False)
    assert run(report_locks, str(shm), theirs) == 0
    held: list[int] = ours.recv()
    return held


def test_a_store_closing_leaves_the_locks_of_another_connection_of_the_process_in_place(db: Path) -> None:
    """A plain ``sqlite3`` connection to the vault (``read_header``, or any later code) inside a
    read transaction keeps its read mark and dead-man lock on the -shm file after a store opened
    and closed beside it: another process must not be able to re-initialise the file, nor a
    checkpoint overwrite the frames that reader is reading."""
    shm = db.with_name("vault.db-shm")
    with closing(sqlite3.connect(db, isolation_level=None)) as plain:
        plain.execute("BEGIN")
        plain.execute("SELECT count(*) FROM meta").fetchone()
        held = locked_bytes(shm)
        assert held
        store = SQLiteStore.open(db)
        try:
            quiet(store)  # the view is in use
        finally:
            store.close()
        assert locked_bytes(shm) == held
        plain.execute("COMMIT")


def descriptors_of(file: tuple[int, int]) -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            info = os.fstat(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            continue
        count += (info.st_dev, info.st_ino) == file
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux /proc")
def test_the_view_holds_no_descriptor_of_the_wal_index_file_of_its_own(db: Path) -> None:
    shm = db.with_name("vault.db-shm")
    with closing(sqlite3.connect(db)) as plain:
        plain.execute("SELECT count(*) FROM meta").fetchone()
        file = (shm.stat().st_dev, shm.stat().st_ino)
        sqlites = descriptors_of(file)  # SQLite's own: one for the file, whatever its connections
        first, second = SQLiteStore.open(db), SQLiteStore.open(db)
        try:
            assert quiet(first) == quiet(second)  # both answer from the view
            assert descriptors_of(file) == sqlites
        finally:
            first.close()
            second.close()
        assert descriptors_of(file) == sqlites
    assert descriptors_of(file) == 0
