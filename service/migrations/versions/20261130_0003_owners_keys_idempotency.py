"""owners, API keys and idempotent creates

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Images made before owners existed belong to no one (''): no key can name that owner, so
    # they stay in the table for an operator to reassign, and out of every client's sight.
    op.add_column("images", sa.Column("owner", sa.String(64), nullable=False, server_default=""))
    op.alter_column("images", "owner", server_default=None)
    op.create_index("ix_images_owner_created_at_id", "images", ["owner", "created_at", "id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "idempotent_creates",
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_idempotent_creates_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_idempotent_creates")),
    )
    # The cascade from a deleted image looks its keys up by image.
    op.create_index("ix_idempotent_creates_image_id", "idempotent_creates", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotent_creates_image_id", table_name="idempotent_creates")
    op.drop_table("idempotent_creates")
    op.drop_table("api_keys")
    op.drop_index("ix_images_owner_created_at_id", table_name="images")
    op.drop_column("images", "owner")
