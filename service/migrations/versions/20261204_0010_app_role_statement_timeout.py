"""a statement timeout for the app role

A statement of the API or the worker that waits behind a lock (a migration's ALTER TABLE, an
operator's open transaction) is cancelled after 15 s, and the request answered 503, instead of
holding its pooled connection as long as the lock lasts. It is the role's default, applied by
PostgreSQL at every login as `picforge_app`: RDS Proxy and PgBouncer refuse a
`statement_timeout` sent as a startup parameter, and a `SET` would pin each connection to one
server session behind RDS Proxy. An operator changes it with
`ALTER ROLE picforge_app SET statement_timeout = ...`. The owner (migrations, key management)
keeps no timeout; the reconciler lifts it for its own whole-table reads.

A role belongs to the whole server, like the role itself (0007).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "picforge_app"
STATEMENT_TIMEOUT = "15s"


def upgrade() -> None:
    op.execute(f"ALTER ROLE {APP_ROLE} SET statement_timeout = '{STATEMENT_TIMEOUT}'")


def downgrade() -> None:
    op.execute(f"ALTER ROLE {APP_ROLE} RESET statement_timeout")
