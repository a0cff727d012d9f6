"""Shapes of the SFU's HTTP answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SfuGrantOut(BaseModel):
    janus_url: str  # the Janus HTTP API to talk to (a session, a handle, then join)
    room: int  # the VideoRoom to join
    token: str  # put in every Janus request ("token") and in the join ("token")
    publisher_id: int  # the "id" to join the VideoRoom with
    expires_at: datetime  # ask again before then: the same token, a later expiry
    ttl_seconds: int


class SfuHandleIn(BaseModel):
    # The Janus session and VideoRoom handle (attached with the grant's token) that
    # will join as the grant's publisher: only it may hold that publisher id.
    session_id: int = Field(ge=1)
    handle_id: int = Field(ge=1)


class SfuFeedOut(BaseModel):
    feed: int  # a publisher id in the VideoRoom
    user_id: str  # whose it is (checked at Janus: their handle, their token)


class SfuFeedsOut(BaseModel):
    feeds: list[SfuFeedOut]


class RecordingOut(BaseModel):
    room_id: str
    active: bool  # being recorded now
    started_by: str | None
    started_at: datetime
    stopped_at: datetime | None = None
    # Once stopped: the library video it becomes (``processing``, then ``ready``).
    video_id: str | None = None
