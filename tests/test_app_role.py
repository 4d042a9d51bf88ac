"""The app role the API and the worker log in as (migration 0007): it may use every table the
code uses, as the code uses it, and nothing more. The whole flow as this role runs in
tests/test_database_rotation.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import make_url

from devstack.postgres import APP_ROLE
from service.models import Base


@pytest.fixture
async def as_app_role(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The suite's database, logged in as the app role (the embedded server trusts local logins)."""
    url = make_url(database_url).set(drivername="postgresql", username=APP_ROLE, password="")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    yield connection
    await connection.close()


async def test_app_role_may_read_every_table_of_the_models(
    as_app_role: asyncpg.Connection,
) -> None:
    """A table a migration adds without granting it would work in every test (run as the
    owner) and fail in production: this names it."""
    for table in [*Base.metadata.tables, "alembic_version"]:
        assert await as_app_role.fetchval("SELECT has_table_privilege($1, 'SELECT')", table), table


async def test_app_role_counts_usage_through_the_triggers(
    as_app_role: asyncpg.Connection,
) -> None:
    """The triggers run as the role that writes the image: it must be able to count."""
    await as_app_role.execute(
        "INSERT INTO images (id, owner, status, filename, content_type, size_bytes) "
        "VALUES (gen_random_uuid(), 'app-role-test', 'awaiting_upload', 'a', 'image/png', 5)"
    )
    try:
        usage = await as_app_role.fetchrow(
            "SELECT awaiting_upload, stored_bytes FROM owner_usage WHERE owner = 'app-role-test'"
        )
        assert tuple(usage) == (1, 5)
    finally:
        await as_app_role.execute("DELETE FROM images WHERE owner = 'app-role-test'")
    assert (
        await as_app_role.fetchval(
            "SELECT stored_bytes FROM owner_usage WHERE owner = 'app-role-test'"
        )
        == 0
    )


async def test_app_role_is_neither_superuser_nor_owner(as_app_role: asyncpg.Connection) -> None:
    role = await as_app_role.fetchrow(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert tuple(role) == (False, False, False, False)
    owners = await as_app_role.fetch(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1",
        APP_ROLE,
    )
    assert owners == []


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO api_keys (id, owner, secret_sha256) VALUES ('0123456789abcdef', 'x', '\\x00')",
        "UPDATE api_keys SET revoked_at = now()",
        "DELETE FROM api_keys",
        "UPDATE idempotent_creates SET key = 'x'",
        "TRUNCATE images",
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE images ADD COLUMN intruder int",
        "DROP TABLE renditions",
        "UPDATE alembic_version SET version_num = 'x'",
        "INSERT INTO owner_limits (owner, create_burst) VALUES ('x', 1000000)",
        "UPDATE owner_limits SET create_burst = 1000000",
        "DELETE FROM owner_usage",
    ],
)
async def test_app_role_cannot_mint_keys_or_change_the_schema(
    as_app_role: asyncpg.Connection, statement: str
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app_role.execute(statement)
