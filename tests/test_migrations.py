"""The migrations build exactly the schema the models describe, and undo themselves."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import alembic_config
from service.models import Base


async def schema_differences(database_url: str) -> list[Any]:
    """What autogenerate would write to bring the database to the models."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()


async def table_names(database_url: str) -> set[str]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def test_migrations_build_the_schema_of_the_models(unmigrated_database_url: str) -> None:
    command.upgrade(alembic_config(unmigrated_database_url), "head")

    assert asyncio.run(schema_differences(unmigrated_database_url)) == []


def test_migrations_downgrade_to_nothing_and_back(unmigrated_database_url: str) -> None:
    config = alembic_config(unmigrated_database_url)
    command.upgrade(config, "head")

    command.downgrade(config, "base")
    assert asyncio.run(table_names(unmigrated_database_url)) == {"alembic_version"}

    command.upgrade(config, "head")
    assert asyncio.run(schema_differences(unmigrated_database_url)) == []
