"""ORM models, in one module because they all reference each other."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from videochat.db.base import Base, UTCDateTime
from videochat.kit.clock import utcnow
from videochat.kit.ids import new_id

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class RoomRole(enum.StrEnum):
    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        # Registered names are unique (case-insensitively); guests may share a name.
        Index(
            "uq_users_registered_username",
            func.lower(text("username")),
            unique=True,
            sqlite_where=text("is_guest = 0"),
            postgresql_where=text("is_guest = false"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(50), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    is_guest: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    is_private: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    invite_code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # When the permanent code was made (None: with the room); a kicked member's old code
    # is one issued before the kick.
    invite_code_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Most members a room takes (None: no limit besides the call's mesh cap).
    capacity: Mapped[int | None] = mapped_column(Integer, default=None)

    members: Mapped[list[RoomMember]] = relationship(
        back_populates="room", cascade="all, delete-orphan", order_by="RoomMember.joined_at"
    )


class RoomMember(Base):
    __tablename__ = "room_members"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[RoomRole] = mapped_column(
        Enum(
            RoomRole,
            native_enum=False,
            length=20,
            validate_strings=True,
            values_callable=lambda roles: [role.value for role in roles],
        ),
        default=RoomRole.MEMBER,
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A muted member may read but not chat or turn on mic, camera or screen.
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who muted them (a user id; no foreign key): a moderator may not lift the owner's mute.
    muted_by: Mapped[str | None] = mapped_column(String(36), default=None)

    room: Mapped[Room] = relationship(back_populates="members")


class RoomBan(Base):
    __tablename__ = "room_bans"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    banned_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoomKick(Base):
    """Someone kicked from a room: codes issued before ``kicked_at`` no longer let them in."""

    __tablename__ = "room_kicks"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kicked_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class RoomInvite(Base):
    __tablename__ = "room_invites"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class KnockStatus(enum.StrEnum):
    PENDING = "pending"
    ADMITTED = "admitted"
    DENIED = "denied"


class RoomKnock(Base):
    """Someone waiting in a private room's lobby (one row per person and room)."""

    __tablename__ = "room_knocks"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default=KnockStatus.PENDING.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    decided_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # History pages and reconnect replays walk one room's messages by id.
        Index("ix_messages_room_id_id", "room_id", "id"),
    )

    # The id is the room's total order: cursors (`before`, `since`) compare ids only.
    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    # The author's account id, kept after the account ends (ids are never reused). No
    # foreign key and no index: each cost every message on the chat's hottest path, to
    # serve only an ended account (migration 0011).
    user_id: Mapped[str | None] = mapped_column(String(36))
    # Kept so history still names the author after the account is gone.
    username: Mapped[str] = mapped_column(String(50))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class MessageReaction(Base):
    """One person's emoji on one message; the key makes a second identical one a no-op."""

    __tablename__ = "message_reactions"

    message_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    # The JWT's ``jti``; the token itself is never stored.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Every rotation keeps the family; reuse of a spent token revokes the family.
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class VideoStatus(enum.StrEnum):
    PENDING = "pending"  # slot created, waiting for the bytes
    UPLOADED = "uploaded"  # bytes stored, queued for processing
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (Index("ix_videos_room_id_created_at", "room_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    uploader_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[VideoStatus] = mapped_column(
        Enum(
            VideoStatus,
            native_enum=False,
            length=20,
            validate_strings=True,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        default=VideoStatus.PENDING,
        index=True,
    )
    # Shown to the uploader when status is "failed".
    error: Mapped[str | None] = mapped_column(Text, default=None)
    provider: Mapped[str] = mapped_column(String(20), default="local")
    # The upload slot: an unguessable id, single-use, valid until upload_expires_at.
    upload_id: Mapped[str] = mapped_column(String(64), unique=True)
    upload_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set while a request is writing the bytes, so a second concurrent PUT is refused.
    upload_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # tus: the size declared at creation (Upload-Length); None for the compatible PUT.
    upload_length: Mapped[int | None] = mapped_column(BigInteger, default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    # The provider's id for the video (Bunny Stream's VideoGuid).
    external_id: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LiveStreamStatus(enum.StrEnum):
    READY = "ready"  # created, nobody publishing yet
    LIVE = "live"  # a WHIP publisher is connected
    ENDED = "ended"  # for good: a stream is never restarted


class LiveStream(Base):
    __tablename__ = "live_streams"
    __table_args__ = (Index("ix_live_streams_room_id_created_at", "room_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    # The publisher's secret (WHIP bearer token); shown to the owner only.
    stream_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Names the public playback URL, so the stream id never has to be shared.
    playback_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[LiveStreamStatus] = mapped_column(
        Enum(
            LiveStreamStatus,
            native_enum=False,
            length=20,
            validate_strings=True,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        default=LiveStreamStatus.READY,
        index=True,
    )
    # Why it ended: stopped, deleted, disconnected, timeout, shutdown.
    ended_reason: Mapped[str | None] = mapped_column(String(50), default=None)
    # The recording kept in the room's library once the stream ended.
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class SfuRoom(Base):
    """The Janus instance (and VideoRoom) a room's call uses while it is on the SFU.

    One row per room, inserted by whichever videochat instance first needs it: the
    primary key makes every instance agree on the same Janus for the room.
    """

    __tablename__ = "sfu_rooms"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    janus_url: Mapped[str] = mapped_column(String(500), index=True)
    janus_room: Mapped[int] = mapped_column(BigInteger)
    # The VideoRoom's secret (destroy, kick, moderate, allowed): never leaves the server.
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SfuGrant(Base):
    """A person's admission to a room's VideoRoom: a Janus token, until ``expires_at``."""

    __tablename__ = "sfu_grants"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str] = mapped_column(String(100), unique=True)
    # The instance the token was added to (withdrawn there, even if the room moved).
    janus_url: Mapped[str] = mapped_column(String(500))
    # The publisher id the person joins the VideoRoom with (kick and mute address it).
    publisher_id: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The Janus session and handle the person publishes from (``sfu.feeds``): only that
    # handle may hold ``publisher_id`` in the VideoRoom; None until it is registered.
    janus_session: Mapped[int | None] = mapped_column(BigInteger, default=None)
    janus_handle: Mapped[int | None] = mapped_column(BigInteger, default=None)


class CallRecording(Base):
    """A recording of a room's call on the SFU: Janus records each publisher into
    ``folder`` (under the recording directory) from ``started_at`` until it is stopped;
    stopping makes ``video_id``, whose job turns the files into one library video.
    """

    __tablename__ = "call_recordings"
    __table_args__ = (
        # One running recording per room (a second start is refused by this index).
        Index(
            "uq_call_recordings_active_room",
            "room_id",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    started_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # The Janus instance and VideoRoom that records (stopped there, even if the room moved).
    janus_url: Mapped[str] = mapped_column(String(500))
    janus_room: Mapped[int] = mapped_column(BigInteger)
    # The recording's own folder under VIDEOCHAT_SFU__RECORDING_DIR (its id).
    folder: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    video_id: Mapped[str | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL"), default=None, unique=True
    )
