"""Queries on users and refresh tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import RefreshToken, User


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    """The user with this id, if any."""
    return await session.get(User, user_id)


async def get_registered_by_name(session: AsyncSession, username: str) -> User | None:
    """The registered (non-guest) account with this name, case-insensitively."""
    statement = select(User).where(
        func.lower(User.username) == username.lower(), User.is_guest.is_(False)
    )
    return (await session.scalars(statement)).first()


async def list_users(session: AsyncSession, *, limit: int, offset: int) -> Sequence[User]:
    """Users in the order they joined."""
    statement = select(User).order_by(User.joined_at, User.id).limit(limit).offset(offset)
    return (await session.scalars(statement)).all()


async def count_users(session: AsyncSession) -> int:
    """How many users exist."""
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def get_refresh_token(session: AsyncSession, token_id: str) -> RefreshToken | None:
    """A refresh token record, locked for update where the database can."""
    statement = select(RefreshToken).where(RefreshToken.id == token_id).with_for_update()
    return (await session.scalars(statement)).first()


async def mark_refresh_used(session: AsyncSession, token: RefreshToken) -> bool:
    """Spend a refresh token; False when someone else already spent it."""
    from videochat.kit.clock import utcnow

    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    """Revoke every token of a rotation family (after a reuse was seen)."""
    await session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id).values(revoked=True)
    )
