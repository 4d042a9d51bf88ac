"""image placeholders: ThumbHash and dominant colour

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("images", sa.Column("thumbhash", sa.String(64), nullable=True))
    op.add_column("images", sa.Column("dominant_color", sa.String(7), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "dominant_color")
    op.drop_column("images", "thumbhash")
