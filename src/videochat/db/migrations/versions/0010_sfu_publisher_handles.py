"""sfu_grants: the Janus session and handle each grant's publisher id is bound to

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-22 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sfu_grants") as batch:
        batch.add_column(sa.Column("janus_session", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("janus_handle", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sfu_grants") as batch:
        batch.drop_column("janus_handle")
        batch.drop_column("janus_session")
