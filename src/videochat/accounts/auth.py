"""Who is calling: bearer-token identity as FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts import repository
from videochat.accounts.tokens import decode_token
from videochat.config import AuthMode, Settings
from videochat.context import Session, SettingsDep
from videochat.db.models import User
from videochat.exceptions import Forbidden, Unauthorized


def bearer_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer ...``, if one was sent."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


async def user_from_token(session: AsyncSession, settings: Settings, token: str) -> User:
    """Resolve an access token to its user, or raise ``Unauthorized``."""
    claims = decode_token(settings.jwt, token, kind="access")
    user = await repository.get_user(session, claims.subject)
    if user is None:
        raise Unauthorized("Token's user no longer exists")
    return user


async def optional_user(request: Request, session: Session, settings: SettingsDep) -> User | None:
    """The caller when a token was sent; a bad token is a 401, not anonymity."""
    token = bearer_token(request)
    if token is None:
        return None
    return await user_from_token(session, settings, token)


async def required_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The caller; 401 without a token (in every auth mode)."""
    if user is None:
        raise Unauthorized()
    return user


def resolve_actor(
    *, settings: Settings, token_user: User | None, claimed_user_id: str | None
) -> str:
    """The user id a write acts for, given the auth mode and what the body claims.

    In ``token`` mode the token decides, and a body naming someone else is a 403;
    in ``open`` mode (the prototype) the body is believed.
    """
    if settings.auth_mode is AuthMode.TOKEN:
        if token_user is None:
            raise Unauthorized()
        if claimed_user_id is not None and claimed_user_id != token_user.id:
            raise Forbidden("user_id does not match the authenticated user")
        return token_user.id
    if claimed_user_id is not None:
        return claimed_user_id
    if token_user is not None:
        return token_user.id
    raise Unauthorized("user_id is required")


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(required_user)]
