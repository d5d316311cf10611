"""Limits: per-agent budgets and the rate-limit state read from upstream headers."""
