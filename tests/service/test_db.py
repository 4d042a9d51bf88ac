"""The engine's pool keeps the connections it opened (how many it may open:
tests/infra/test_connection_budget.py)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from service.config import DatabaseSettings
from service.db import create_engine


async def test_load_above_the_pool_reuses_its_connections(unmigrated_database_url: str) -> None:
    """Twice as many concurrent statements as the pool holds, round after round, run on the
    same connections: none is opened and closed per request (an overflow connection would be,
    costing each request beyond the pool a login)."""
    engine = create_engine(DatabaseSettings(database_url=unmigrated_database_url, db_pool_size=3))

    async def backend_pid() -> int:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await asyncio.sleep(0.01)  # held long enough that the others must queue or open
            return int(pid)

    try:
        seen: set[int] = set()
        for _ in range(5):
            seen.update(await asyncio.gather(*(backend_pid() for _ in range(6))))
    finally:
        await engine.dispose()
    assert len(seen) == 3
