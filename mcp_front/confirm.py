"""Asking the user before a full reveal or a write, where the client can ask (elicitation).

The questions are SDK resolvers (``Resolve``), which work on both protocol paths: a
standalone ``elicitation/create`` request on handshake connections, an input-required round
on 2026-07-28 ones. A resolver returns ``NotAsked`` when there is nothing to ask or the
client cannot ask, and the service's policy alone decides. The question is written by the
server from the validated request; the form only asks yes or no, so no secret ever travels
through it.
"""

from __future__ import annotations

from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from clavis_mcp.vault import Service


class Approval(BaseModel):
    approve: bool = Field(description="Yes to go ahead, no to refuse.")


class NotAsked(BaseModel):
    """The user was not asked: nothing needs asking, or the client cannot ask."""

    reason: str


Answer = ElicitationResult[Approval]


def can_ask(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare ``elicitation: {}`` counts as form)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def reveal_question(service: Service) -> str:
    return (
        f"An AI assistant asks to see the full credential of service {service.name!r} "
        f"({service.connector}, for {', '.join(str(h) for h in service.hosts)}). It will be able to copy it. "
        "Reveal it?"
    )


def write_question(service: Service, method: str, url: str, preview: str) -> str:
    return (
        f"An AI assistant wants to send this request with the credential of {service.name!r}:\n\n"
        f"{method} {url}\n\n{preview}\n\nAllow it?"
    )


def outcome(answer: Answer | AcceptedElicitation[Any]) -> bool | None:
    """True if approved, False if declined or cancelled, None if the user was not asked."""
    if isinstance(answer, AcceptedElicitation):
        if isinstance(answer.data, NotAsked):
            return None
        return isinstance(answer.data, Approval) and answer.data.approve
    return False
