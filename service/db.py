"""The database engine, sessions, and the start-up check that the schema is migrated.

Two pools reach PostgreSQL. SQLAlchemy's engine serves the ORM sessions of every use-case that
needs a transaction. A plain asyncpg pool serves the single statements on the hot path (the
API-key lookup, and the INSERT plain creates share, `service.inserts`): each is a transaction on
its own, and skipping the session's machinery (pre-ping, BEGIN, COMMIT, reset, unit of work)
cuts a create's CPU by more than half. See bench/README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from service.config import DatabaseSettings
from service.database_login import engine_options

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaNotMigrated(RuntimeError):
    """The database is not at the schema this code was written for."""


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        **engine_options(settings),
    )


StatementPool: TypeAlias = asyncpg.Pool

# What asyncpg raises when PostgreSQL is unreachable or dropped a connection (a failover, a
# restart): a connection error, an operator's shutdown, a refused or reset socket.
CONNECTION_LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


async def create_statement_pool(engine: AsyncEngine, settings: DatabaseSettings) -> StatementPool:
    """A pool for single autocommit statements, connected exactly as `engine` connects.

    No pre-ping: a connection PostgreSQL dropped fails the one request that meets it (callers
    turn `CONNECTION_LOST` into a 503), and the pool then discards it and reconnects. No reset
    query on release: these connections only ever run lone statements and change no session
    state; asyncpg still rolls back a connection released inside a transaction.
    """
    login = engine_options(settings)["async_creator"]
    return await asyncpg.create_pool(
        connect=lambda *_, **__: login(),
        min_size=1,
        max_size=settings.db_pool_size,
        reset=keep_session,
    )


async def keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to undo: see `create_statement_pool`."""


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially; URL-encoded passwords carry it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


async def upgrade_database(settings: DatabaseSettings) -> None:
    """Apply every migration, over a connection that logs in as `create_engine`'s do."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            config = alembic_config(settings.sqlalchemy_url)
            await connection.run_sync(_upgrade, config)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()


async def require_migrated(engine: AsyncEngine) -> None:
    """Refuse to run against a database whose schema is not the one this code expects."""
    expected = head_revision()
    try:
        async with engine.connect() as connection:
            current = await connection.execute(text("SELECT version_num FROM alembic_version"))
            revision = current.scalar_one_or_none()
    except ProgrammingError:
        revision = None
    if revision != expected:
        raise SchemaNotMigrated(
            f"the database schema is at revision {revision or 'none'}, this code needs "
            f"{expected}: run `picforge migrate` first"
        )
