"""Request and response bodies of the rooms domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from videochat.kit.text import single_line_name

RoomName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=2, max_length=100),
    AfterValidator(single_line_name),
]


class RoomCreate(BaseModel):
    name: RoomName
    is_private: bool = False
    capacity: Annotated[int | None, Field(ge=2, le=1000)] = None


class RoomJoin(BaseModel):
    user_id: Annotated[str | None, Field(max_length=64)] = None
    invite_code: Annotated[str | None, Field(max_length=64)] = None


class RoomOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    is_private: bool
    owner_id: str | None
    users: list[str]
    # Only for the owner and moderators: the code that lets others into a private room.
    invite_code: str | None = None
    capacity: int | None = None
    # user id -> owner / moderator / member
    roles: dict[str, str] = {}


class MemberOut(BaseModel):
    user_id: str
    username: str
    role: str
    joined_at: datetime
    muted: bool = False


class JoinResult(BaseModel):
    message: str


class KnockOut(BaseModel):
    """A knock on a private room's lobby, as its knocker or a moderator sees it."""

    room_id: str
    user_id: str
    username: str
    status: Literal["pending", "admitted", "denied", "expired"]
    created_at: datetime | None = None
    decided_at: datetime | None = None
