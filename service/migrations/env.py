"""Alembic environment: runs migrations over the same asyncpg driver the service uses."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import DatabaseSettings
from service.models import Base

target_metadata = Base.metadata


def database_url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured and configured != "postgresql://":
        return configured
    return DatabaseSettings().sqlalchemy_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_sync_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_sync_migrations)
    await engine.dispose()


# `picforge migrate` hands over a connection of its own engine (service.db.create_engine), which
# logs in and checks TLS the way the settings say; a bare URL gets an engine of its own.
given: Connection | None = context.config.attributes.get("connection")
if context.is_offline_mode():
    run_migrations_offline()
elif given is not None:
    run_sync_migrations(given)
else:
    asyncio.run(run_migrations_online())
