"""videochat: a self-hosted video chat server."""

__version__ = "0.1.0"
