"""Request and response bodies of moderation: role changes and invites."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field


class RoleChange(BaseModel):
    role: Literal["moderator", "member"]


class InviteCreate(BaseModel):
    expires_in_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] = 7 * 24 * 3600
    max_uses: Annotated[int | None, Field(ge=1, le=10_000)] = None


class InviteOut(BaseModel):
    code: str
    room_id: str
    expires_at: datetime
    max_uses: int | None
    uses: int
