"""The `clavis-mcp` command."""
