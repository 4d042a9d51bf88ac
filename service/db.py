"""The database engine, sessions, and the start-up check that the schema is migrated."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from service.config import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class SchemaNotMigrated(RuntimeError):
    """The database is not at the schema this code was written for."""


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        pool_pre_ping=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(sqlalchemy_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially; URL-encoded passwords carry it.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url.replace("%", "%%"))
    return config


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
