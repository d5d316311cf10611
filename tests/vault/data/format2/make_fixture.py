"""Write a format-2 vault (keyfile) with every kind of row, using the code as of format 2."""

import shutil
import sys
import time
from pathlib import Path

from clavis_mcp.mcp_front.settings import ServiceSettings, parse_probe, save_settings
from clavis_mcp.vault import Vault, validate_secret
from clavis_mcp.vault.agents import add_agent
from clavis_mcp.vault.audit.log import AuditLog
from clavis_mcp.vault.limits import budget, ratelimits
from clavis_mcp.vault.oauth import state
from clavis_mcp.vault.oauth.flow import OAuthConfig, TokenGrant
from clavis_mcp.vault.secret import Secret
from tests.conftest import make_service

home = Path(sys.argv[1])
shutil.rmtree(home, ignore_errors=True)
with Vault.create(home) as v:
    v.add_service(make_service("plain", "api.example.com"), validate_secret("sk-format2-plain-0123456789abcdef"))
    tok = add_agent(v, "ci")
    (home / "agent-token.txt").write_text(tok)
    cfg = OAuthConfig(token_url="https://auth.example.com/token", client_id="cid", grant="refresh_token")
    grant = TokenGrant(
        access_token=Secret("at-format2-0123456789abcdef"),
        expires_at=time.time() + 3600,
        refresh_token=Secret("rt-format2-0123456789abcdef"),
        scope=None,
    )
    state.register(v, make_service("acme", "api.acme.example"), cfg, Secret("cs-format2-0123456789abcdef"), grant)
    budget.set_budget(v, "plain", budget.Budget(5, 3600.0))
    ratelimits.record(v, "plain", {"retry-after": "30"}, 1700000000.0)
    save_settings(v, "plain", ServiceSettings(confirm_writes=True, probe=parse_probe("GET /v1/models")))
    log = AuditLog.for_vault(v)
    for _ in range(3):
        log.append(service="plain", decision="injected")
    log.close()
