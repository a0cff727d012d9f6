"""Queries on users and refresh tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from videochat.db.models import RefreshToken, RoomMember, User
from videochat.kit.cache import cached

USER_CACHE = "user"


@dataclass(frozen=True, slots=True)
class UserView:
    """A user's public profile (display name) as plain data, as the cache keeps it."""

    id: str
    username: str
    is_guest: bool
    joined_at: datetime

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.username, user.is_guest, user.joined_at)

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "is_guest": self.is_guest,
            "joined_at": self.joined_at.isoformat(),
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> UserView:
        joined_at = datetime.fromisoformat(data["joined_at"])
        return cls(data["id"], data["username"], data["is_guest"], joined_at)


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    """The user with this id, if any."""
    return await session.get(User, user_id)


@cached(USER_CACHE, key=lambda user_id: user_id, dump=UserView.dump, load=UserView.load)
async def get_user_view(session: AsyncSession, user_id: str) -> UserView | None:
    """A user's public profile, from the cache when it has it."""
    user = await get_user(session, user_id)
    return UserView.of(user) if user is not None else None


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


async def list_room_mates(
    session: AsyncSession, user_id: str, *, limit: int, offset: int
) -> Sequence[User]:
    """The user and everyone sharing a room with them, in the order they joined."""
    own_rooms = select(RoomMember.room_id).where(RoomMember.user_id == user_id)
    mates = select(RoomMember.user_id).where(RoomMember.room_id.in_(own_rooms))
    statement = (
        select(User)
        .where(or_(User.id == user_id, User.id.in_(mates)))
        .order_by(User.joined_at, User.id)
        .limit(limit)
        .offset(offset)
    )
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
