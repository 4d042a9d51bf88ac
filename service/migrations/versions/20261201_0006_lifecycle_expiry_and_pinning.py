"""the storage lifecycle: the `expired` status, the pinned original version, the rendition token

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'awaiting_upload', 'processing', 'ready', 'failed'"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_images_status"), "images", type_="check")
    op.create_check_constraint("status", "images", f"status IN ({STATUSES}, 'expired')")
    op.add_column("images", sa.Column("original_version_id", sa.String(1024), nullable=True))
    # Every existing image gets its own random token (the default is volatile: evaluated per
    # row). Its renditions keep their recorded keys until a reprocess writes them anew.
    op.add_column(
        "images",
        sa.Column(
            "rendition_token",
            sa.String(32),
            nullable=False,
            server_default=sa.text("replace(gen_random_uuid()::text, '-', '')"),
        ),
    )
    op.create_index(
        "ix_images_awaiting_upload_created_at",
        "images",
        ["created_at"],
        postgresql_where=sa.text("status = 'awaiting_upload'"),
    )
    op.create_index("ix_idempotent_creates_created_at", "idempotent_creates", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotent_creates_created_at", table_name="idempotent_creates")
    op.drop_index("ix_images_awaiting_upload_created_at", table_name="images")
    op.drop_column("images", "rendition_token")
    op.drop_column("images", "original_version_id")
    op.execute("DELETE FROM images WHERE status = 'expired'")
    op.drop_constraint(op.f("ck_images_status"), "images", type_="check")
    op.create_check_constraint("status", "images", f"status IN ({STATUSES})")
