"""The database engine, sessions, the start-up check that the schema is migrated, and which
failures mean the database is out of reach.

The API reaches PostgreSQL one way: SQLAlchemy's engine, whose pool holds at most
`db_pool_size` connections per process. Use-cases that need a transaction take an ORM session;
lone statements (the API-key lookup, a plain create's INSERT) run on the same pool in
autocommit, so each is one round trip with no BEGIN or COMMIT around it.

No pre-ping on checkout (it would cost every request a round trip): a connection PostgreSQL
dropped fails the one request that meets it with a 503 (`service.errors`), and SQLAlchemy then
discards the pool's connections and reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy import exc as sqlalchemy_errors
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from service.config import DatabaseSettings
from service.database_login import DatabaseNoAnswer, engine_options

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# RDS Proxy closes a client connection idle for 8 h (infra/database_proxy.tf): a pooled
# connection older than this is replaced when checked out, so an idle one is never used after
# the proxy dropped it. Costs one new connection every 7 h, and no round trip per checkout.
POOL_RECYCLE_S = 7 * 3600
# The background jobs' set-wide statements (the sweeps, the reconciler's reads) run this first
# in their transaction: it lifts the app role's statement timeout (migration 0010), which is a
# request's, so a backlog left by an outage is cleared in one go however long it takes, and a
# lock in their way is waited for rather than failing every run.
LIFT_STATEMENT_TIMEOUT = text("SET LOCAL statement_timeout = 0")


class SchemaNotMigrated(RuntimeError):
    """The database is not at the schema this code was written for."""


def create_engine(
    settings: DatabaseSettings,
    *,
    pool_size: int | None = None,
    command_timeout_s: float | None = None,
) -> AsyncEngine:
    """An engine whose pool holds `pool_size` connections (default: the setting). A statement
    whose answer takes longer than `command_timeout_s` raises `DatabaseNoAnswer` (a
    `TimeoutError` that names the setting), and its connection is closed (default: no bound,
    which migrations and the worker's sweeps need)."""
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size or settings.db_pool_size,
        # No overflow: SQLAlchemy closes an overflow connection as soon as it is returned, so
        # under load steadily above the pool every request beyond it paid a new login (a
        # round trip; a sixth of a create's CPU, and most of its p99). The pool keeps all it
        # opens instead.
        max_overflow=0,
        pool_recycle=POOL_RECYCLE_S,
        **engine_options(settings, command_timeout_s),
    )
    if command_timeout_s is not None:
        event.listen(
            engine.sync_engine, "handle_error", partial(_name_the_bound, command_timeout_s)
        )
    return engine


def _name_the_bound(command_timeout_s: float, context: ExceptionContext) -> BaseException | None:
    """A statement's bare TimeoutError (asyncpg's, when `command_timeout_s` runs out), as a
    `DatabaseNoAnswer` that says so; what handles a TimeoutError handles it the same."""
    error = context.original_exception
    if isinstance(error, TimeoutError) and not isinstance(error, DatabaseNoAnswer):
        return DatabaseNoAnswer(
            f"PostgreSQL did not answer a statement within {command_timeout_s:g} s "
            "(PICFORGE_DB_COMMAND_TIMEOUT_S)"
        )
    return None


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """`engine`, sharing its pool, running each statement as its own transaction."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


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


# A lost or refused connection (a refused login is a ConnectionError: service.database_login),
# an operator's shutdown, SQLAlchemy's wrapping of those, and the pool's own timeout.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.CannotConnectNowError,
    sqlalchemy_errors.TimeoutError,
)


def is_database_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it wraps) is the database being out of reach."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sqlalchemy_errors.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


async def require_migrated(engine: AsyncEngine) -> None:
    """Refuse to run against a database whose schema is not the one this code expects."""
    expected = head_revision()
    try:
        async with engine.connect() as connection:
            current = await connection.execute(text("SELECT version_num FROM alembic_version"))
            revision = current.scalar_one_or_none()
    except sqlalchemy_errors.ProgrammingError:
        revision = None
    if revision != expected:
        raise SchemaNotMigrated(
            f"the database schema is at revision {revision or 'none'}, this code needs "
            f"{expected}: run `picforge migrate` first"
        )


async def require_migrated_if_reachable(engine: AsyncEngine) -> bool:
    """`require_migrated`, for a process whose start-up check (service.startup) found the
    database reachable and migrated moments ago: a database out of reach since (a failover, a
    rotated password) is no reason to exit, since the process waits out outages like any
    other. Whether it was reachable."""
    try:
        await require_migrated(engine)
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        return False
    return True


T = TypeVar("T")


def run_on_database(
    use_case: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]], *, command: str
) -> T:
    """Run one of the `picforge` command's use-cases against the configured database; a schema
    not migrated or a refused value ends the command with one line, never a traceback."""

    async def run() -> T:
        engine = create_engine(DatabaseSettings())
        try:
            await require_migrated(engine)
            return await use_case(create_sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SchemaNotMigrated, ValueError) as exc:
        raise SystemExit(f"{command}: {exc}") from None
