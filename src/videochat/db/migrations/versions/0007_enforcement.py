"""enforcement: who muted, remembered kicks, when the invite code was issued

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain columns (no foreign key): SQLite adds them without rebuilding the tables.
    op.add_column("room_members", sa.Column("muted_by", sa.String(length=36), nullable=True))
    op.add_column(
        "rooms", sa.Column("invite_code_issued_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "room_kicks",
        sa.Column("room_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("kicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kicked_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_room_kicks_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_room_kicks_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["kicked_by"],
            ["users.id"],
            name=op.f("fk_room_kicks_kicked_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", name=op.f("pk_room_kicks")),
    )


def downgrade() -> None:
    op.drop_table("room_kicks")
    op.drop_column("rooms", "invite_code_issued_at")
    op.drop_column("room_members", "muted_by")
