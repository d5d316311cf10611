"""Audit log verbs (review, verify, stats)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
