"""A name that ends in a newline is refused wherever a name is validated.

Each validator checks its input against a pattern anchored with ``^...$``; ``re.match`` lets ``$``
match before a final newline, so ``"stripe-prod\\n"`` passed as a service name and
``"X-Api-Key\\n"`` as a header name (a header the proxy would write with a line break in it).
They are matched whole (``fullmatch``) now.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from clavis_mcp.clavis_cli.client_config import parse_env_pairs
from clavis_mcp.vault.agents import validate_agent_name
from clavis_mcp.vault.auth.base import validate_extra_headers, validate_header_name
from clavis_mcp.vault.auth.body import BodyAuth
from clavis_mcp.vault.auth.fields import validate_field_name
from clavis_mcp.vault.auth.query import build_query
from clavis_mcp.vault.errors import ClavisError
from clavis_mcp.vault.refs import parse as parse_ref
from clavis_mcp.vault.service import validate_name

VALIDATORS: list[tuple[str, Callable[[str], object]]] = [
    ("service name", validate_name),
    ("agent name", validate_agent_name),
    ("header name", validate_header_name),
    ("fixed header name", lambda name: validate_extra_headers({name: "v"})),
    ("auth field name", validate_field_name),
    ("query parameter", lambda name: build_query(param=name)),
    ("body field", lambda name: BodyAuth(field=name).validate()),
    ("environment variable reference", lambda name: parse_ref(f"env://{name}")),
    ("client environment name", lambda name: parse_env_pairs((f"{name}=1",))),
]
GOOD = {
    "service name": "stripe-prod",
    "agent name": "ci",
    "header name": "X-Api-Key",
    "fixed header name": "X-Extra",
    "auth field name": "client_id",
    "query parameter": "api_key",
    "body field": "token",
    "environment variable reference": "STRIPE_KEY",
    "client environment name": "CLAVIS_API_URL",
}


@pytest.mark.parametrize(("what", "validate"), VALIDATORS, ids=[what for what, _ in VALIDATORS])
def test_a_name_with_a_trailing_newline_is_refused(what: str, validate: Callable[[str], object]) -> None:
    validate(GOOD[what])
    with pytest.raises((ClavisError, ValueError)):
        validate(GOOD[what] + "\n")
