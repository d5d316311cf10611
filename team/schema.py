"""The PostgreSQL schema of team mode: users, keys, services' metadata, shared limits, the audit log.

The schema is made by the bootstrap with the database owner's login; the replicas connect with a
role of their own that owns nothing (:func:`create_replica_role`). No secret is stored here:
credentials live in OpenBao, API keys and passwords only as hashes.
Run again by the owner (:func:`create_schema`), it brings an existing database up to date.
The audit tables refuse UPDATE, DELETE and TRUNCATE by trigger; a database owner can still drop
the trigger, which is why each record is also chained by an HMAC whose key is in OpenBao and the
chain heads are signed by OpenBao transit (team/audit.py).
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SCHEMA = """
CREATE TABLE IF NOT EXISTS team_meta (key text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO team_meta (key, value) VALUES ('services_version', 0) ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS users (
    email text PRIMARY KEY,
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Bumped to end every login of the user at once: a JWT names the epoch it was issued under
-- (team/identity.py). Added here, not above, so that an existing database gains it too.
ALTER TABLE users ADD COLUMN IF NOT EXISTS session_epoch bigint NOT NULL DEFAULT 0;
-- Who added the user ("user/EMAIL" or "key/NAME"; NULL: the bootstrap, or before this column) and
-- that login's session epoch: ending that login demotes the admins it made (team/identity.py).
ALTER TABLE users ADD COLUMN IF NOT EXISTS created_by text;
ALTER TABLE users ADD COLUMN IF NOT EXISTS created_epoch bigint;

CREATE TABLE IF NOT EXISTS api_keys (
    name text PRIMARY KEY,
    key_hash bytea UNIQUE NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'member')),
    services text[] NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE IF NOT EXISTS services (
    name text PRIMARY KEY,
    definition jsonb NOT NULL,
    secret_version integer NOT NULL,
    last_used timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rate_limits (
    service text PRIMARY KEY,
    headers jsonb NOT NULL,
    observed_at double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS budget_usage (
    service text PRIMARY KEY,
    window_start double precision NOT NULL,
    count integer NOT NULL
);

CREATE TABLE IF NOT EXISTS oauth (
    service text PRIMARY KEY REFERENCES services (name) ON DELETE CASCADE,
    token_url text NOT NULL,
    client_id text NOT NULL,
    expires_at double precision NOT NULL,
    refreshes integer NOT NULL DEFAULT 0
);

-- One row per failed login, and per login whose password is being checked (counted first).
CREATE TABLE IF NOT EXISTS login_failures (
    email text NOT NULL,
    client text NOT NULL DEFAULT '',  -- the client's network (team/identity.py client_network)
    at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE login_failures ADD COLUMN IF NOT EXISTS client text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS login_failures_email ON login_failures (email, at);
CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures (client, email, at);

CREATE TABLE IF NOT EXISTS audit (
    id text PRIMARY KEY,
    chain text NOT NULL,
    seq bigint NOT NULL,
    time timestamptz NOT NULL,
    record text NOT NULL,  -- canonical JSON, exactly as MAC'd
    mac text NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    heads jsonb NOT NULL,
    root text NOT NULL,
    key_version integer NOT NULL,
    signature text NOT NULL
);

CREATE OR REPLACE FUNCTION clavis_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
"""

_TRIGGERS = [
    f"""DO $$ BEGIN
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION clavis_append_only();
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION clavis_append_only();
    EXCEPTION WHEN duplicate_object THEN NULL; END $$"""
    for table in ("audit", "audit_checkpoints")
]


_READ_WRITE = ("team_meta", "users", "api_keys", "services", "rate_limits", "budget_usage", "oauth", "login_failures")
_APPEND_ONLY = ("audit", "audit_checkpoints")


def create_replica_role(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str) -> None:
    """The replicas' own login: it reads and writes the state tables but may only INSERT into the
    audit tables, and owns nothing, so it cannot switch the append-only triggers off either."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(str(database[0])), sql.Identifier(role))
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        for table in _READ_WRITE:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(role)
                )
            )
        for table in _APPEND_ONLY:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role))
            )
        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO {}").format(sql.Identifier(role)))


def create_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create every table, index and trigger; safe to run again."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7478201)")  # two replicas starting at once
        conn.execute(SCHEMA)
        for trigger in _TRIGGERS:
            conn.execute(trigger)
