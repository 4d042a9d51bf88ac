"""multipart: the S3 multipart upload an image's original is being sent by (branch multipart)

An image created with a multipart ticket remembers the upload id S3 gave it: the part,
complete and abort routes accept that upload id only, for that image of that owner, and the
sweep aborts it when the image expires; its part size is kept beside it, so a change of
`PICFORGE_MULTIPART_PART_BYTES` never breaks an upload already under way. The upload id is set
while the upload is open, NULL once it is completed or aborted. No new table: `picforge_app`
already reads and writes `images` (0007).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("images", sa.Column("multipart_upload_id", sa.String(1024), nullable=True))
    op.add_column("images", sa.Column("multipart_part_bytes", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("images", "multipart_part_bytes")
    op.drop_column("images", "multipart_upload_id")
