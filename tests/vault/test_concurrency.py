"""Several processes at once, and processes killed mid-write: nothing lost, nothing half-written.

Real child processes (``multiprocessing`` with the spawn method, and SIGKILL) against one vault
file, as the MCP server, the standalone proxy and the CLI share it in real use.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from contextlib import closing
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.keys.keyfile import KeyFileStore
from tests.conftest import make_service
from tests.vault.rawdb import query

pytestmark = pytest.mark.e2e
WRITERS, SERVICES_EACH = 4, 15
SPAWN = multiprocessing.get_context("spawn")


def secret_for(name: str) -> str:
    return f"sk-{name}-0123456789abcdef"


def add_many(home: str, writer: int) -> None:
    with Vault.open(Path(home)) as vault:
        for i in range(SERVICES_EACH):
            name = f"w{writer}-s{i}"
            vault.add_service(make_service(name, f"{name}.example.com"), validate_secret(secret_for(name)))


def test_concurrent_writers_in_separate_processes_lose_nothing(vault: Vault, home: Path) -> None:
    workers = [SPAWN.Process(target=add_many, args=(str(home), w)) for w in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    services = vault.list_services()
    assert len(services) == WRITERS * SERVICES_EACH
    assert all(vault.secret(s.name).reveal() == secret_for(s.name) for s in services)


def killed_inside_a_transaction(home: str) -> None:
    with Vault.open(Path(home)) as vault, vault.store.atomic() as batch:
        batch.delete_service("svc")
        batch.set_meta({"half": "written"})
        os.kill(os.getpid(), signal.SIGKILL)


def test_process_killed_mid_transaction_leaves_the_old_state(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(secret_for("old")))
    child = SPAWN.Process(target=killed_inside_a_transaction, args=(str(home),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    with closing(Vault.open(home)) as reopened:
        assert reopened.secret("svc").reveal() == secret_for("old")
        with reopened.store.read() as batch:
            assert "half" not in batch.meta()
        assert query(home, "PRAGMA integrity_check") == [("ok",)]


def rotate_forever(home: str, done: Connection) -> None:
    with Vault.open(Path(home)) as vault:
        i = 0
        while True:
            i += 1
            vault.rotate_secret("svc", validate_secret(secret_for(f"v{i}")))
            done.send(i)


def test_process_killed_while_rotating_leaves_the_last_or_the_next_secret(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(secret_for("v0")))
    receiver, sender = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(target=rotate_forever, args=(str(home), sender))
    child.start()
    committed = 0
    while committed < 25:
        assert receiver.poll(60), "the rotating child stopped reporting"
        committed = receiver.recv()
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join(timeout=60)
    while receiver.poll(0):
        committed = receiver.recv()
    receiver.close()
    sender.close()
    with closing(Vault.open(home)) as reopened:
        assert query(home, "PRAGMA integrity_check") == [("ok",)]
        value = reopened.secret("svc").reveal()
        assert value in (secret_for(f"v{committed}"), secret_for(f"v{committed + 1}"))
        assert reopened.get_service("svc").rotated_at is not None


@pytest.mark.parametrize("attempts", [3], ids=["three-racing-inits"])
def test_racing_inits_make_exactly_one_vault(home: Path, attempts: int) -> None:
    with SPAWN.Pool(attempts) as pool:
        results = pool.map(try_create, [str(home)] * attempts)
    assert results.count("created") == 1 and results.count("refused") == attempts - 1
    Vault.open(home).close()
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def try_create(home: str) -> str:
    from clavis_mcp.vault import VaultError

    try:
        Vault.create(Path(home)).close()
    except VaultError:
        return "refused"
    return "created"


class DiesAfterMakingItsKey(KeyFileStore):
    """A key store whose process is SIGKILLed right after it wrote new key material, before the commit."""

    def create(self, home: Path, vault_id: str) -> tuple[bytes, dict[str, str | int]]:
        made = super().create(home, vault_id)
        os.kill(os.getpid(), signal.SIGKILL)
        return made


def rekey_and_die(home: str) -> None:
    with Vault.open(Path(home)) as vault:
        vault.rekey(DiesAfterMakingItsKey())


def test_process_killed_mid_rekey_leaves_the_old_key_store_working(vault: Vault, home: Path) -> None:
    vault.add_service(make_service("svc", "api.example.com"), validate_secret(secret_for("old")))
    child = SPAWN.Process(target=rekey_and_die, args=(str(home),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    with closing(Vault.open(home)) as reopened:
        assert reopened.key_store_info().description.startswith(f"key file {home / 'vault.key'}")
        assert reopened.secret("svc").reveal() == secret_for("old")
