"""Identifiers for users, rooms and the like."""

from __future__ import annotations

import secrets
import uuid


def new_id() -> str:
    """A random UUID as text (users, rooms, uploads, streams)."""
    return str(uuid.uuid4())


def new_secret(nbytes: int = 24) -> str:
    """An unguessable URL-safe token (invite codes, stream keys)."""
    return secrets.token_urlsafe(nbytes)
