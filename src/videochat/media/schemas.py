"""Request and response bodies of the video library."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from videochat.kit.text import single_line_name, strip_controls

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(single_line_name),
]
Description = Annotated[str, StringConstraints(max_length=5000), AfterValidator(strip_controls)]
# An id a client names (a room, a user in open mode): no NUL or escape codes reach SQL.
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(single_line_name)
]


class VideoUploadCreate(BaseModel):
    title: Title
    description: Description = ""
    # Open auth mode only (the prototype's identity-in-body); token mode uses the token.
    user_id: Reference | None = None
    # The file's size, if known: the slot then holds exactly this many bytes, and a tus
    # client that never sends Upload-Length (tuspy) can finish at its ``tus_url``.
    size_bytes: int | None = Field(default=None, ge=1)


class TusUploadMetadata(VideoUploadCreate):
    """A tus creation's ``Upload-Metadata``: the JSON route's fields and rules, plus the room."""

    room_id: Reference


class VideoUpdate(BaseModel):
    """PATCH /videos/{id}: a new title (the only field a person changes)."""

    model_config = {"extra": "forbid"}

    title: Title


class VideoUploadSlot(BaseModel):
    id: str
    upload_url: str
    status: str
    title: str
    upload_id: str
    expires_at: datetime
    # The resumable alternative: PATCH the bytes here with the tus 1.0 protocol.
    tus_url: str


class UploadResult(BaseModel):
    status: str
    upload_id: str
    video_id: str
    size_bytes: int


class VideoOut(BaseModel):
    id: str
    title: str
    description: str
    room_id: str
    uploader_id: str | None
    status: str
    error: str | None
    provider: str
    created_at: datetime
    updated_at: datetime
    size_bytes: int | None
    duration_seconds: float | None
    width: int | None
    height: int | None
    thumbnail_url: str | None
    playback_url: str | None


class WebhookReceived(BaseModel):
    status: str = "received"
