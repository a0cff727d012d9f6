"""Account rules: guests, registration, login and refresh-token rotation.

Nothing here commits but a reused refresh token's revocation: the request's session
(``context.Session``) commits once when the endpoint returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.accounts import repository
from videochat.accounts.passwords import hash_password, verify_password
from videochat.accounts.schemas import GuestCreated, TokenPair, UserOut
from videochat.config import JWTSettings
from videochat.db.models import RefreshToken, User
from videochat.db.unit_of_work import commit, rollback
from videochat.exceptions import Conflict, NotFound, Unauthorized
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_id
from videochat.security.tokens import decode_token, issue_token


async def create_guest(session: AsyncSession, *, username: str, jwt: JWTSettings) -> GuestCreated:
    """Create a guest account and a long-lived access token for it."""
    if await repository.get_registered_by_name(session, username):
        raise Conflict(f"Username '{username}' belongs to a registered account")
    user = User(username=username, is_guest=True)
    session.add(user)
    await session.flush()  # the request's unit of work commits it
    token, _ = issue_token(jwt, subject=user.id, kind="access", ttl_seconds=jwt.guest_ttl_seconds)
    return GuestCreated(
        **UserOut.model_validate(user).model_dump(),
        access_token=token,
        expires_in=jwt.guest_ttl_seconds,
    )


async def register(
    session: AsyncSession, *, username: str, password: str, jwt: JWTSettings
) -> TokenPair:
    """Create a registered account and log it in."""
    if await repository.get_registered_by_name(session, username):
        raise Conflict(f"Username '{username}' is already taken")
    user = User(username=username, is_guest=False, password_hash=hash_password(password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration won the race
        await rollback(session)
        raise Conflict(f"Username '{username}' is already taken") from exc
    return await _token_pair(session, user=user, jwt=jwt, family_id=new_id())


async def login(
    session: AsyncSession, *, username: str, password: str, jwt: JWTSettings
) -> TokenPair:
    """Check a password and hand out a fresh token pair."""
    user = await repository.get_registered_by_name(session, username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Incorrect username or password")
    return await _token_pair(session, user=user, jwt=jwt, family_id=new_id())


async def refresh(session: AsyncSession, *, refresh_token: str, jwt: JWTSettings) -> TokenPair:
    """Rotate a refresh token; a reused one revokes its whole family, unless it was spent
    less than ``jwt.refresh_reuse_grace_seconds`` ago (then it rotates once more)."""
    claims = decode_token(jwt, refresh_token, kind="refresh")
    record = await repository.get_refresh_token(session, claims.token_id)
    if record is None or record.user_id != claims.subject:
        raise Unauthorized("Unknown refresh token")
    if record.revoked:
        raise Unauthorized("Refresh token has been revoked")
    if not await _spend(session, record, grace=timedelta(seconds=jwt.refresh_reuse_grace_seconds)):
        # Someone holds a copy of a spent token: cut off every descendant too.
        await repository.revoke_family(session, record.family_id)
        # Committed here, not by the request: the 401 below rolls the request back,
        # and the revocation must stand all the same.
        await commit(session)
        raise Unauthorized("Refresh token was already used; please log in again")
    user = await repository.get_user(session, record.user_id)
    if user is None:
        raise Unauthorized("Account no longer exists")
    return await _token_pair(session, user=user, jwt=jwt, family_id=record.family_id)


async def _spend(session: AsyncSession, record: RefreshToken, *, grace: timedelta) -> bool:
    """Spend the token now; True too for one spent less than ``grace`` ago.

    Without the grace, a rotation whose answer never reached the client (the page
    unloaded mid-request, the connection dropped) signed it out: the client, holding
    only the spent token, was refused as a thief would be. A thief's copy presented
    after the grace still revokes the family, and a signed-out family stays revoked.
    """
    if record.used_at is None and await repository.mark_refresh_used(session, record):
        return True
    # (used_at still None: a concurrent request spent it a moment ago.)
    spent_at = record.used_at or utcnow()
    return utcnow() - spent_at < grace


async def logout(session: AsyncSession, *, refresh_token: str, jwt: JWTSettings) -> None:
    """Revoke the refresh token's whole family: this sign-in ends on every device copy."""
    claims = decode_token(jwt, refresh_token, kind="refresh")
    record = await repository.get_refresh_token(session, claims.token_id)
    if record is not None and record.user_id == claims.subject:
        await repository.revoke_family(session, record.family_id)


async def get(session: AsyncSession, user_id: str) -> User:
    """The user or a 404."""
    user = await repository.get_user(session, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def get_view(session: AsyncSession, user_id: str) -> repository.UserView:
    """The user's public profile (from the read cache) or a 404."""
    user = await repository.get_user_view(session, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def list_users(
    session: AsyncSession, *, viewer: User | None, limit: int, offset: int
) -> Sequence[User]:
    """A page of the users ``viewer`` may see: room mates; everyone when None (open mode)."""
    if viewer is None:
        return await repository.list_users(session, limit=limit, offset=offset)
    return await repository.list_room_mates(session, viewer.id, limit=limit, offset=offset)


async def _token_pair(
    session: AsyncSession, *, user: User, jwt: JWTSettings, family_id: str
) -> TokenPair:
    access, _ = issue_token(jwt, subject=user.id, kind="access", ttl_seconds=jwt.access_ttl_seconds)
    refresh, claims = issue_token(
        jwt,
        subject=user.id,
        kind="refresh",
        ttl_seconds=jwt.refresh_ttl_seconds,
        family_id=family_id,
    )
    session.add(
        RefreshToken(
            id=claims.token_id,
            user_id=user.id,
            family_id=family_id,
            expires_at=utcnow() + timedelta(seconds=jwt.refresh_ttl_seconds),
        )
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=jwt.access_ttl_seconds,
        user=UserOut.model_validate(user),
    )
