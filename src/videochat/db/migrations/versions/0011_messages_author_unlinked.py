"""messages.user_id: no foreign key to users and no index

Every message paid for both on the chat's hottest path: the index's B-tree entry (a page
per author per commit: 23 against 13 µs of SQLite CPU a message, batches of 12 over 100
authors), and the key's check against users. Both served one thing: setting the column
to NULL when an account ended, which a guest's sign-out does. Without them the column
keeps the ended account's id (ids are never reused, so it matches no one), and the
message its ``username`` as before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:40:00
"""

import warnings
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import SAWarning

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with warnings.catch_warnings():
        # SQLite rebuilds the table from its reflection, which reads the tables it refers
        # to as well: users' expression index (unique names) cannot be reflected, and
        # need not be (users is not rebuilt).
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        with op.batch_alter_table("messages") as batch:
            batch.drop_index("ix_messages_user_id")
            batch.drop_constraint("fk_messages_user_id_users", type_="foreignkey")


def downgrade() -> None:
    # Authors whose account ended since keep no id (what the foreign key's SET NULL did).
    op.execute(
        "UPDATE messages SET user_id = NULL WHERE user_id IS NOT NULL "
        "AND user_id NOT IN (SELECT id FROM users)"
    )
    with op.batch_alter_table("messages") as batch:
        batch.create_foreign_key(
            "fk_messages_user_id_users", "users", ["user_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_messages_user_id", ["user_id"], unique=False)
