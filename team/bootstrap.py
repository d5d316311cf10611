"""First set-up of a team deployment, with OpenBao's root token (which the replicas never get).

In OpenBao: a KV v2 mount for credentials and the audit chain key, a transit mount with the JWT
and audit-checkpoint signing keys, an AppRole for the replicas whose policy reaches only these
mounts. In PostgreSQL (with the owner's ``dsn``): the schema, a login role for the replicas that
owns nothing and may only append to the audit tables, the first admin user and an admin API key.
The replicas get that role's URL, never the owner's.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

from clavis_mcp.vault.errors import TeamError

from .bao import Bao
from .config import Names
from .identity import create_user
from .keys import FIRST_ADMIN_KEY, create_key
from .schema import create_replica_role, create_schema

PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,40}$")

_POLICY = """
path "{kv}/data/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "{kv}/metadata/*" {{ capabilities = ["read", "delete", "list"] }}
path "{transit}/sign/jwt" {{ capabilities = ["update"] }}
path "{transit}/sign/audit" {{ capabilities = ["update"] }}
path "{transit}/keys/jwt" {{ capabilities = ["read"] }}
path "{transit}/keys/audit" {{ capabilities = ["read"] }}
"""


@dataclass(frozen=True)
class Bootstrap:
    env: dict[str, str]  # what `team serve` reads; holds the AppRole secret id and the database URL
    admin_key: str

    def __repr__(self) -> str:
        return f"Bootstrap(env=[{', '.join(sorted(self.env))}])"


def bootstrap(
    bao_addr: str, root_token: str, dsn: str, *, admin_email: str, admin_password: str, prefix: str = "clavis"
) -> Bootstrap:
    if not PREFIX.fullmatch(prefix):
        raise TeamError(f"invalid prefix {prefix!r}: use lower-case letters, digits and '-', starting with a letter")
    names = Names(prefix)
    bao = Bao(bao_addr, root_token)
    try:
        role_id, secret_id = _setup_openbao(bao, names)
    finally:
        bao.close()
    role, role_password = f"{prefix.replace('-', '_')}_replica", secrets.token_urlsafe(24)
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_schema(conn)
        create_replica_role(conn, role, role_password)
        create_user(conn, admin_email, admin_password, "admin")
        admin_key, _ = create_key(conn, FIRST_ADMIN_KEY, [], role="admin", created_by=f"user/{admin_email.lower()}")
    env = {
        "CLAVIS_TEAM_BAO_ADDR": bao_addr,
        "CLAVIS_TEAM_BAO_ROLE_ID": role_id,
        "CLAVIS_TEAM_BAO_SECRET_ID": secret_id,
        "CLAVIS_TEAM_BAO_PREFIX": prefix,
        "CLAVIS_TEAM_DATABASE_URL": make_conninfo(dsn, user=role, password=role_password),
    }
    return Bootstrap(env, admin_key)


def _setup_openbao(bao: Bao, names: Names) -> tuple[str, str]:
    bao.request("POST", f"sys/mounts/{names.kv}", {"type": "kv", "options": {"version": "2"}})
    bao.request("POST", f"sys/mounts/{names.transit}", {"type": "transit"})
    for key in ("jwt", "audit"):
        bao.request("POST", f"{names.transit}/keys/{key}", {"type": "ed25519"})
    bao.kv_write(names.kv, names.audit_key_path, {"hmac_key": secrets.token_hex(32)}, cas=0)
    bao.request("POST", f"sys/auth/{names.approle}", {"type": "approle"})
    bao.request(
        "PUT", f"sys/policies/acl/{names.policy}", {"policy": _POLICY.format(kv=names.kv, transit=names.transit)}
    )
    bao.request(
        "POST",
        f"auth/{names.approle}/role/replica",
        {"token_policies": [names.policy], "token_ttl": "1h", "token_max_ttl": "4h", "secret_id_ttl": "0"},
    )
    role_id = bao.request("GET", f"auth/{names.approle}/role/replica/role-id")["data"]["role_id"]
    secret_id = bao.request("POST", f"auth/{names.approle}/role/replica/secret-id", {})["data"]["secret_id"]
    return str(role_id), str(secret_id)
