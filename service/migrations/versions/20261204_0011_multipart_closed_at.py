"""multipart: an upload's id is kept once it closes, so a replayed create answers with it

Until now the upload id was set while the upload was open and NULL once it was completed or
the sweep aborted it. A create replayed with its Idempotency-Key after that found no upload
and opened another: an open upload on an image already uploaded (a second original could be
completed under it) or expired (nothing would ever abort it). Now the id stays, and
`multipart_closed_at` says the upload is closed: the multipart routes accept an open upload
only, and a replay answers with the first request's upload, open or not. An upload closed
before this revision has no id to answer with; its replay is answered `upload_not_found`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("images", sa.Column("multipart_closed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    # Back to "NULL once closed".
    op.execute("UPDATE images SET multipart_upload_id = NULL WHERE multipart_closed_at IS NOT NULL")
    op.drop_column("images", "multipart_closed_at")
