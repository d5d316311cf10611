"""MCP client verbs (install, doctor, serve over HTTP)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
