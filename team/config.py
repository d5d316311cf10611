"""What a replica is told by its environment, and the names it derives in OpenBao from its prefix."""

from __future__ import annotations

import os
from dataclasses import dataclass

from clavis_mcp.vault.errors import TeamError

ENV = ("CLAVIS_TEAM_BAO_ADDR", "CLAVIS_TEAM_BAO_ROLE_ID", "CLAVIS_TEAM_BAO_SECRET_ID", "CLAVIS_TEAM_DATABASE_URL")


@dataclass(frozen=True, slots=True)
class Names:
    """Every OpenBao path of one deployment, under its prefix (tests give each test its own)."""

    prefix: str

    @property
    def kv(self) -> str:
        return self.prefix

    @property
    def transit(self) -> str:
        return f"{self.prefix}-transit"

    @property
    def approle(self) -> str:
        return f"{self.prefix}-approle"

    @property
    def policy(self) -> str:
        return f"{self.prefix}-replica"

    audit_key_path = "config/audit"

    @staticmethod
    def secret_path(service: str) -> str:
        return f"services/{service}"


@dataclass(frozen=True)
class ReplicaConfig:
    bao_addr: str
    role_id: str
    secret_id: str
    database_url: str
    names: Names

    def __repr__(self) -> str:
        return f"ReplicaConfig(bao_addr={self.bao_addr!r}, prefix={self.names.prefix!r})"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ReplicaConfig:
        env = dict(os.environ) if env is None else env
        missing = [name for name in ENV if not env.get(name)]
        if missing:
            raise TeamError(
                f"team serve needs {', '.join(missing)} in its environment (printed by `clavis-mcp team dev` "
                "or made by the bootstrap; see docs/team-mode.md)"
            )
        return cls(
            env["CLAVIS_TEAM_BAO_ADDR"],
            env["CLAVIS_TEAM_BAO_ROLE_ID"],
            env["CLAVIS_TEAM_BAO_SECRET_ID"],
            env["CLAVIS_TEAM_DATABASE_URL"],
            Names(env.get("CLAVIS_TEAM_BAO_PREFIX") or "clavis"),
        )
