"""when a reprocess of the image was last queued, so reprocess requests coalesce

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("images", sa.Column("reprocess_queued_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("images", "reprocess_queued_at")
