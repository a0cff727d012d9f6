"""moderation: mutes, bans, expiring invites, room capacity

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN works on SQLite too; batch mode would reflect (and warn about)
    # the expression index on users.
    op.add_column("rooms", sa.Column("capacity", sa.Integer(), nullable=True))
    op.add_column(
        "room_members",
        sa.Column("muted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "room_bans",
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("banned_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_room_bans_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_room_bans_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["banned_by"],
            ["users.id"],
            name=op.f("fk_room_bans_banned_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_room_bans")),
    )
    op.create_table(
        "room_invites",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["rooms.id"],
            name=op.f("fk_room_invites_room_id_rooms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_room_invites_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_room_invites")),
    )
    op.create_index(op.f("ix_room_invites_room_id"), "room_invites", ["room_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_room_invites_room_id"), table_name="room_invites")
    op.drop_table("room_invites")
    op.drop_table("room_bans")
    with op.batch_alter_table("room_members") as batch_op:
        batch_op.drop_column("muted")
    with op.batch_alter_table("rooms") as batch_op:
        batch_op.drop_column("capacity")
