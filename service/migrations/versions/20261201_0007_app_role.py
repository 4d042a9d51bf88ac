"""the app role the API and the worker log in as

The API and the worker connect as `picforge_app`, never as the owner of the schema (the RDS
master, a member of rds_superuser): the app role may read and write the rows it serves, and no
more. It cannot change the schema, mint or revoke API keys, or read another database.
Migrations and key management run as the owner.

The role has no password: on RDS it logs in with IAM tokens (it is granted `rds_iam` where
that role exists); elsewhere an operator gives it a password (`ALTER ROLE ... PASSWORD`).
A role belongs to the whole server, so the downgrade takes back this database's grants and
leaves the role for any other database that uses it.

Every table a later migration adds must be granted here-like to the app role, with only what
the code does to it: tests/test_app_role.py fails for a table the role cannot use.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "picforge_app"

# What the API and the worker do to each table; nothing else is granted.
GRANTS = {
    "alembic_version": "SELECT",  # the start-up check that the schema is migrated
    "api_keys": "SELECT",  # authenticate; creating and revoking keys is the owner's
    "images": "SELECT, INSERT, UPDATE, DELETE",
    "renditions": "SELECT, INSERT, UPDATE, DELETE",
    "idempotent_creates": "SELECT, INSERT, DELETE",  # DELETE: keys expire (worker.sweep)
}


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} LOGIN;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
                GRANT rds_iam TO {APP_ROLE};
            END IF;
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database());
        END $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    for table, privileges in GRANTS.items():
        op.execute(f"GRANT {privileges} ON {table} TO {APP_ROLE}")


def downgrade() -> None:
    for table in GRANTS:
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
    op.execute(
        f"""
        DO $$
        BEGIN
            EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {APP_ROLE}', current_database());
        END $$
        """
    )
