"""Audit log: the hash-chained JSONL file, its anchors in the vault, index, filters and time parsing."""
