"""call_recordings: recordings of SFU calls, one running per room, each making a video

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-21 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("stopped_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "call_recordings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("started_by", sa.String(length=36), nullable=True),
        sa.Column("janus_url", sa.String(length=500), nullable=False),
        sa.Column("janus_room", sa.BigInteger(), nullable=False),
        sa.Column("folder", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("video_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_call_recordings_room_id_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["users.id"],
            name=op.f("fk_call_recordings_started_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_call_recordings_video_id_videos"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_recordings")),
        sa.UniqueConstraint("video_id", name=op.f("uq_call_recordings_video_id")),
    )
    op.create_index(op.f("ix_call_recordings_room_id"), "call_recordings", ["room_id"])
    op.create_index(op.f("ix_call_recordings_started_at"), "call_recordings", ["started_at"])
    op.create_index(
        "uq_call_recordings_active_room",
        "call_recordings",
        ["room_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_call_recordings_active_room", table_name="call_recordings")
    op.drop_index(op.f("ix_call_recordings_started_at"), table_name="call_recordings")
    op.drop_index(op.f("ix_call_recordings_room_id"), table_name="call_recordings")
    op.drop_table("call_recordings")
