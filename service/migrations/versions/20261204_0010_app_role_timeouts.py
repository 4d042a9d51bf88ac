"""timeouts for the app role: no statement waits, and no transaction idles, without end

- `statement_timeout`: a statement of the API or the worker that waits behind a lock (a
  migration's ALTER TABLE, an operator's open transaction) is cancelled after 15 s, and the
  request answered 503, instead of holding its pooled connection as long as the lock lasts.
- `idle_in_transaction_session_timeout`: a session of the app role that leaves a transaction
  open and idle for 60 s (a process hung or cut off mid-DELETE, which holds the image's row
  lock across its S3 calls) is ended by the server, and its locks with it. A DELETE so slow
  that S3 holds it that long is answered 503 and rolls back, as when S3 fails it: the image
  stays for the client's retry, which finishes the job.

Role defaults, applied by PostgreSQL at every login as `picforge_app`: RDS Proxy and
PgBouncer refuse these sent as startup parameters, and a `SET` would pin each connection to
one server session behind RDS Proxy. An operator changes them with
`ALTER ROLE picforge_app SET ... = ...`. The owner (migrations, key management) keeps none;
the worker's set-wide background statements (its sweeps, the reconciler's reads) lift the
statement timeout for their own transaction (`service.db.LIFT_STATEMENT_TIMEOUT`).

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
TIMEOUTS = {"statement_timeout": "15s", "idle_in_transaction_session_timeout": "60s"}


def upgrade() -> None:
    for name, value in TIMEOUTS.items():
        op.execute(f"ALTER ROLE {APP_ROLE} SET {name} = '{value}'")


def downgrade() -> None:
    for name in TIMEOUTS:
        op.execute(f"ALTER ROLE {APP_ROLE} RESET {name}")
