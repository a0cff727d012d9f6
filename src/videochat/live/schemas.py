"""Request and response bodies of live streams."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from videochat.media.schemas import Title


class LiveStreamCreate(BaseModel):
    title: Title
    # Open auth mode only (the prototype's identity-in-body); token mode uses the token.
    user_id: Annotated[str | None, Field(max_length=64)] = None


class LiveStreamOut(BaseModel):
    id: str
    room_id: str
    owner_id: str | None
    title: str
    status: str
    # Only its owner sees the key; everyone else gets null.
    stream_key: str | None
    playback_id: str
    rtmp_url: str | None
    pull_url: str
    whip_url: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    ended_reason: str | None
    # The recording in the room's library, once the stream has ended.
    video_id: str | None
