"""How a router is used: the HTTP API (FastAPI app factory, auth, micro-batching, hot swap)."""
