"""Team mode: the Clavis-compatible API server on OpenBao and PostgreSQL, and its engines."""
