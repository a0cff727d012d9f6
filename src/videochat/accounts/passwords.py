"""Argon2 password hashing."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown name as slow as a wrong password.

    Made at the first such login, not at import: a hash costs ~0.1 s of CPU, which every
    process (the server, its workers, each CLI command) would pay at start-up.
    """
    return _hasher.hash("videochat-dummy-password")


def hash_password(password: str) -> str:
    """An Argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches (constant work when there is no hash)."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False
