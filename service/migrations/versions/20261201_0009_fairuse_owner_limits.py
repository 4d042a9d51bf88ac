"""per-owner limits: overrides, and the usage every API process counts against

`owner_limits` holds an owner's overrides of the configured defaults (`picforge limits`); a
NULL column keeps the default. `owner_usage` is one row per owner: the GCRA state of each rate
limit (the theoretical arrival time, one timestamp per limit) and the two quotas' counts.

The counts are kept by triggers on `images` and `renditions`, so whichever process writes a
row (the API's create or DELETE, the worker's upload claim, renditions, sweep, reconcile), the
count moves in the same transaction and never drifts from the rows:
- `awaiting_upload`: images in that status;
- `stored_bytes`: every image's declared size unless it expired (its original never came),
  plus its renditions' sizes as the worker records them.
A deleted image's bytes go in a BEFORE DELETE trigger, while its renditions are still there to
be summed; the renditions' own trigger then finds no image and leaves the count be.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "picforge_app"
GRANTS = {
    "owner_limits": "SELECT",  # overrides are the operator's (`picforge limits`, as the owner)
    "owner_usage": "SELECT, INSERT, UPDATE",  # the API charges it; triggers count into it
}

ADD_USAGE = """
    INSERT INTO owner_usage AS u (owner, awaiting_upload, stored_bytes)
    VALUES (who, d_awaiting, d_bytes)
    ON CONFLICT (owner) DO UPDATE
    SET awaiting_upload = u.awaiting_upload + EXCLUDED.awaiting_upload,
        stored_bytes = u.stored_bytes + EXCLUDED.stored_bytes
"""

COUNT_IMAGE = f"""
CREATE FUNCTION picforge_count_image() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who varchar(64);
    d_awaiting integer := 0;
    d_bytes bigint := 0;
BEGIN
    IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
        who := OLD.owner;
        d_awaiting := d_awaiting - (OLD.status = 'awaiting_upload')::integer;
        d_bytes := d_bytes - CASE WHEN OLD.status = 'expired' THEN 0 ELSE OLD.size_bytes END;
    END IF;
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        who := NEW.owner;
        d_awaiting := d_awaiting + (NEW.status = 'awaiting_upload')::integer;
        d_bytes := d_bytes + CASE WHEN NEW.status = 'expired' THEN 0 ELSE NEW.size_bytes END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        d_bytes := d_bytes - coalesce(
            (SELECT sum(size_bytes) FROM renditions WHERE image_id = OLD.id), 0);
    END IF;
    IF d_awaiting <> 0 OR d_bytes <> 0 THEN
        {ADD_USAGE};
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NULL;
END $$
"""

COUNT_RENDITION = f"""
CREATE FUNCTION picforge_count_rendition() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who varchar(64);
    d_awaiting integer := 0;
    d_bytes bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        d_bytes := NEW.size_bytes;
        SELECT owner INTO who FROM images WHERE id = NEW.image_id;
    END IF;
    IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
        d_bytes := d_bytes - OLD.size_bytes;
        SELECT owner INTO who FROM images WHERE id = OLD.image_id;
    END IF;
    -- No image: a cascade from its DELETE, which already took these bytes back.
    IF who IS NOT NULL AND d_bytes <> 0 THEN
        {ADD_USAGE};
    END IF;
    RETURN NULL;
END $$
"""

BACKFILL = """
INSERT INTO owner_usage (owner, awaiting_upload, stored_bytes)
SELECT i.owner,
       count(*) FILTER (WHERE i.status = 'awaiting_upload'),
       coalesce(sum(CASE WHEN i.status = 'expired' THEN 0 ELSE i.size_bytes END), 0)
         + coalesce(sum(r.bytes), 0)
FROM images i
LEFT JOIN (SELECT image_id, sum(size_bytes) AS bytes FROM renditions GROUP BY image_id) r
  ON r.image_id = i.id
GROUP BY i.owner
"""


def upgrade() -> None:
    op.create_table(
        "owner_limits",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("create_rate_per_minute", sa.Integer()),
        sa.Column("create_burst", sa.Integer()),
        sa.Column("reprocess_rate_per_minute", sa.Integer()),
        sa.Column("max_awaiting_upload", sa.Integer()),
        sa.Column("max_stored_bytes", sa.BigInteger()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "create_rate_per_minute > 0 AND create_burst > 0 AND reprocess_rate_per_minute > 0 "
            "AND max_awaiting_upload >= 0 AND max_stored_bytes >= 0",
            name=op.f("ck_owner_limits_positive"),
        ),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_owner_limits")),
    )
    op.create_table(
        "owner_usage",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("creates_tat", sa.DateTime(timezone=True)),
        sa.Column("reprocesses_tat", sa.DateTime(timezone=True)),
        sa.Column("awaiting_upload", sa.Integer(), server_default="0", nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_owner_usage")),
    )
    op.execute(BACKFILL)
    op.execute(COUNT_IMAGE)
    op.execute(COUNT_RENDITION)
    op.execute(
        "CREATE TRIGGER images_count_usage AFTER INSERT OR UPDATE OF status, size_bytes "
        "ON images FOR EACH ROW EXECUTE FUNCTION picforge_count_image()"
    )
    op.execute(
        "CREATE TRIGGER images_uncount_usage BEFORE DELETE "
        "ON images FOR EACH ROW EXECUTE FUNCTION picforge_count_image()"
    )
    op.execute(
        "CREATE TRIGGER renditions_count_usage AFTER INSERT OR UPDATE OF size_bytes OR DELETE "
        "ON renditions FOR EACH ROW EXECUTE FUNCTION picforge_count_rendition()"
    )
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TRIGGER renditions_count_usage ON renditions")
    op.execute("DROP TRIGGER images_uncount_usage ON images")
    op.execute("DROP TRIGGER images_count_usage ON images")
    op.execute("DROP FUNCTION picforge_count_rendition()")
    op.execute("DROP FUNCTION picforge_count_image()")
    op.drop_table("owner_usage")
    op.drop_table("owner_limits")
