"""Who is calling, as FastAPI dependencies that name what the caller may do.

- ``OptionalUser``: the token's user, or None without a token (a bad token is a 401).
- ``CurrentUser``: the token's user; 401 without one, in every auth mode.
- ``Actor``: whoever may write: the token's user; in ``open`` mode (the prototype)
  also nobody, the endpoint then takes the acting id from the path or body, or acts
  for nobody where the prototype sent no id (``acting_id``).

The token is decoded once per request (security.identity keeps the claims in the
request's state), whichever of the rate limiter and these dependencies asks first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts import repository
from videochat.config import AuthMode, Settings
from videochat.context import Session, SettingsDep
from videochat.db.models import User
from videochat.exceptions import Forbidden, Unauthorized
from videochat.security.identity import access_claims
from videochat.security.tokens import decode_token


async def _user_of(session: AsyncSession, user_id: str) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise Unauthorized("Token's user no longer exists")
    return user


async def user_from_token(session: AsyncSession, settings: Settings, token: str) -> User:
    """Resolve an access token sent another way (``?token=``) to its user, or 401."""
    claims = decode_token(settings.jwt, token, kind="access")
    return await _user_of(session, claims.subject)


async def optional_user(request: Request, session: Session, settings: SettingsDep) -> User | None:
    """The caller when a token was sent; a bad token is a 401, not anonymity."""
    claims = access_claims(request.scope, settings.jwt)
    if claims is None:
        return None
    return await _user_of(session, claims.subject)


async def required_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    """The caller; 401 without a token (in every auth mode)."""
    if user is None:
        raise Unauthorized()
    return user


def require_actor(settings: Settings, user: User | None) -> None:
    """A write needs a caller in ``token`` mode; in ``open`` mode anyone may write."""
    if user is None and settings.auth_mode is AuthMode.TOKEN:
        raise Unauthorized()


async def actor(
    user: Annotated[User | None, Depends(optional_user)], settings: SettingsDep
) -> User | None:
    """The caller of a write: required in ``token`` mode, may be anonymous in ``open``."""
    require_actor(settings, user)
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


def acting_id(
    *, settings: Settings, token_user: User | None, claimed_user_id: str | None
) -> str | None:
    """Like ``resolve_actor``, for writes the prototype made without naming anyone.

    In ``open`` mode a caller with neither token nor ``user_id`` acts for nobody (None):
    the prototype's ``{"title"}`` bodies create streams and uploads owned by no one.
    ``token`` mode is unchanged: the token decides, a body naming someone else is a 403.
    """
    if settings.auth_mode is AuthMode.OPEN and token_user is None and claimed_user_id is None:
        return None
    return resolve_actor(settings=settings, token_user=token_user, claimed_user_id=claimed_user_id)


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(required_user)]
Actor = Annotated[User | None, Depends(actor)]
