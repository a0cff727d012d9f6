"""Request and response bodies of the rooms domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

RoomName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]


class RoomCreate(BaseModel):
    name: RoomName
    is_private: bool = False


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


class MemberOut(BaseModel):
    user_id: str
    username: str
    role: str
    joined_at: datetime


class JoinResult(BaseModel):
    message: str
