"""Benchmarks: what the proxy and the MCP path cost, against the same work without them (`make bench`)."""
