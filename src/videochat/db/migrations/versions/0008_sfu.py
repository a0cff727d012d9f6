"""sfu: the Janus instance of each room's call, and the grants admitted to it

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger()


def upgrade() -> None:
    op.create_table(
        "sfu_rooms",
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("janus_url", sa.String(length=500), nullable=False),
        sa.Column("janus_room", BIGINT, nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_sfu_rooms_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", name=op.f("pk_sfu_rooms")),
    )
    op.create_index(op.f("ix_sfu_rooms_janus_url"), "sfu_rooms", ["janus_url"])
    op.create_table(
        "sfu_grants",
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=False),
        sa.Column("janus_url", sa.String(length=500), nullable=False),
        sa.Column("publisher_id", BIGINT, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_sfu_grants_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sfu_grants_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_sfu_grants")),
        sa.UniqueConstraint("token", name=op.f("uq_sfu_grants_token")),
    )
    op.create_index(op.f("ix_sfu_grants_expires_at"), "sfu_grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sfu_grants_expires_at"), table_name="sfu_grants")
    op.drop_table("sfu_grants")
    op.drop_index(op.f("ix_sfu_rooms_janus_url"), table_name="sfu_rooms")
    op.drop_table("sfu_rooms")
