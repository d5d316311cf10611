"""One replica process's parts, built from its configuration and torn down with it.

A replica is stateless between processes: everything shared is in PostgreSQL and OpenBao. What
it holds is a database connection, an AppRole-authenticated OpenBao client, its mirror of the
services, its own audit chain and its embedded proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from clavis_mcp.vault.errors import TeamError

from .audit import TeamAuditLog
from .bao import Bao
from .config import ReplicaConfig
from .egress import Egress
from .identity import Tokens
from .keys import PREFIX as KEY_PREFIX
from .keys import Principal, principal_for_key
from .mirror import Mirror
from .storage import TeamStore

CHECKPOINT_SECONDS = 5.0
logger = logging.getLogger(__name__)


class Replica:
    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.names = config.names
        self.conn: psycopg.Connection[Any] = psycopg.connect(config.database_url, autocommit=True)
        try:
            check_schema(self.conn)
        except TeamError:
            self.conn.close()
            raise
        self.bao = Bao(config.bao_addr, approle=(config.names.approle, config.role_id, config.secret_id))
        self.store = TeamStore(self.conn, self.bao, self.names)
        self.audit = TeamAuditLog(self.conn, self.bao, self.names)
        self.tokens = Tokens(self.bao, self.names.transit, issuer=f"clavis-team:{self.names.prefix}")
        self.tokens.check_users_in(self._connection)
        self.mirror = Mirror(self.store)
        self.egress = Egress(self.mirror, self.audit, self.store)
        self._checkpoints: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.mirror.sync()
        await self.egress.start()
        self._checkpoints = asyncio.create_task(self._checkpoint_loop(), name="clavis-audit-checkpoints")

    async def stop(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
        await self.egress.stop()
        with contextlib.suppress(Exception):
            self.audit.checkpoint()
        self.mirror.close()
        self.bao.close()
        self.conn.close()

    def reconnect_if_broken(self) -> None:
        """A dropped database connection (a PostgreSQL restart or failover) is replaced before the
        next request uses it; the audit chain goes on where it was."""
        if self.conn.broken or self.conn.closed:
            logger.warning("the database connection was lost; reconnecting")
            self.conn = psycopg.connect(self.config.database_url, autocommit=True)
            self.store.use(self.conn)
            self.audit.use(self.conn)

    def _connection(self) -> psycopg.Connection[Any]:
        self.reconnect_if_broken()
        return self.conn

    def principal(self, credential: str) -> Principal | None:
        """Who a bearer credential names: a live API key, or a valid JWT of ours; None otherwise."""
        self.reconnect_if_broken()
        if not credential.startswith(KEY_PREFIX):
            return self.tokens.principal(credential)
        try:
            return principal_for_key(self.conn, credential)
        except psycopg.OperationalError:  # the server dropped us since the last request: once more
            self.reconnect_if_broken()
            return principal_for_key(self.conn, credential)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                self.audit.checkpoint()
            except Exception as exc:  # a missed checkpoint is retried at the next tick
                logger.warning("audit checkpoint failed: %s", type(exc).__name__)


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """Refuse to start on a database an older version set up: every login check needs the users'
    session epochs, ending a login needs who made each user (and with which login), and the
    replicas' role may not add the columns itself."""
    for column in ("session_epoch", "created_by", "created_epoch"):
        try:
            conn.execute(f"SELECT {column} FROM users LIMIT 0")
        except psycopg.errors.UndefinedColumn:
            raise TeamError(
                f"the team database's schema is older than this replica (users.{column} is missing): run "
                "`clavis-mcp team migrate` once with the database owner's URL in CLAVIS_TEAM_DATABASE_URL, "
                "then start it"
            ) from None
