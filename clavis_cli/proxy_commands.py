"""Proxy verbs (standalone proxy, env, certs, agents)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
