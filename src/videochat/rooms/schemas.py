"""Request and response bodies of the rooms domain."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

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


class RoomCursor(BaseModel):
    """Where a page of ``GET /rooms`` ended: the last room's creation time and id."""

    model_config = ConfigDict(frozen=True)

    created_at: Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]
    # Printable ASCII only: a NUL would reach PostgreSQL as a 500, not a 422.
    id: Annotated[str, Field(pattern=r"^[!-~]{1,36}$")]

    def encode(self) -> str:
        """The opaque text clients send back as ``?cursor=``."""
        raw = json.dumps([self.created_at.isoformat(), self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> RoomCursor:
        """Parse what ``encode`` made; ValueError for anything else."""
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            created_at, room_id = json.loads(raw)
            return cls(created_at=created_at, id=room_id)
        except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
            # ValidationError, JSONDecodeError and UnicodeDecodeError are ValueErrors.
            raise ValueError("Invalid cursor: use the one from the previous page") from exc


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
