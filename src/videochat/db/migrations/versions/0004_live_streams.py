"""live streams

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("ready", "live", "ended")


def upgrade() -> None:
    op.create_table(
        "live_streams",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("stream_key", sa.String(length=64), nullable=False),
        sa.Column("playback_id", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(*_STATUSES, name="livestreamstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("ended_reason", sa.String(length=50), nullable=True),
        sa.Column("video_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_live_streams_room_id_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_live_streams_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_live_streams_video_id_videos"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_streams")),
        sa.UniqueConstraint("stream_key", name=op.f("uq_live_streams_stream_key")),
        sa.UniqueConstraint("playback_id", name=op.f("uq_live_streams_playback_id")),
    )
    with op.batch_alter_table("live_streams", schema=None) as batch_op:
        batch_op.create_index("ix_live_streams_room_id_created_at", ["room_id", "created_at"])
        batch_op.create_index(batch_op.f("ix_live_streams_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_live_streams_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("live_streams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_streams_status"))
        batch_op.drop_index(batch_op.f("ix_live_streams_owner_id"))
        batch_op.drop_index("ix_live_streams_room_id_created_at")
    op.drop_table("live_streams")
