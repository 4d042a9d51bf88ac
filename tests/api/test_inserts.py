"""Plain creates committed in groups, against real PostgreSQL: creates that arrive together share
one INSERT, each still gets its own answer, and a row PostgreSQL refuses fails only its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from devstack.provision import Stack
from service.config import DatabaseSettings
from service.db import create_sessionmaker, create_statement_pool
from service.inserts import ImageInserts, InsertedImage, NewImage
from service.keys import ParsedKey, generate_key, parse_key, revoke_key
from tests.conftest import KeyMaker


class CountingStatements:
    """The real statement pool, counting the statements a test sends through it."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.sent = 0

    async def fetch(self, query: str, *args: Any) -> Any:
        self.sent += 1
        return await self.pool.fetch(query, *args)


@pytest.fixture
async def statements(database_url: str, stack: Stack) -> AsyncIterator[CountingStatements]:
    engine = create_async_engine(database_url)
    pool = await create_statement_pool(engine, DatabaseSettings(database_url=database_url))
    yield CountingStatements(pool)
    await pool.close()
    await engine.dispose()


@pytest.fixture
def inserts(statements: CountingStatements) -> ImageInserts:
    return ImageInserts(statements)


def new_image(key: str | ParsedKey, filename: str = "a.jpg") -> NewImage:
    return NewImage(
        id=uuid.uuid4(),
        key=parse_key(key) if isinstance(key, str) else key,
        filename=filename,
        content_type="image/jpeg",
        size_bytes=10,
    )


async def stored_owners(db: AsyncEngine) -> dict[uuid.UUID, str]:
    async with db.connect() as connection:
        rows = await connection.execute(text("SELECT id, owner FROM images"))
        return {row.id: row.owner for row in rows}


async def test_concurrent_creates_share_one_insert(
    inserts: ImageInserts, statements: CountingStatements, make_key: KeyMaker, db: AsyncEngine
) -> None:
    alice, bob = await make_key("alice"), await make_key("bob")
    images = [new_image(alice if n % 2 else bob) for n in range(20)]

    results = await asyncio.gather(*(inserts.insert(image) for image in images))

    assert statements.sent == 1
    assert [result.owner if result else None for result in results] == [
        "alice" if n % 2 else "bob" for n in range(20)
    ]
    assert await stored_owners(db) == {
        image.id: result.owner for image, result in zip(images, results, strict=True) if result
    }


async def test_lone_create_is_inserted_at_once(
    inserts: ImageInserts, statements: CountingStatements, make_key: KeyMaker
) -> None:
    key = await make_key("alice")

    first = await inserts.insert(new_image(key))
    second = await inserts.insert(new_image(key))

    assert first is not None and second is not None
    assert statements.sent == 2


async def test_batch_inserts_only_rows_of_active_keys(
    inserts: ImageInserts, make_key: KeyMaker, db: AsyncEngine
) -> None:
    valid = await make_key("alice")
    revoked = await make_key("alice")
    assert await revoke_key(create_sessionmaker(db), key_id=parse_key(revoked).key_id)
    wrong_secret = ParsedKey(
        key_id=parse_key(valid).key_id, secret=parse_key(generate_key()).secret
    )
    images = [
        new_image(valid),
        new_image(revoked),
        new_image(generate_key()),
        new_image(wrong_secret),
    ]

    results = await asyncio.gather(*(inserts.insert(image) for image in images))

    assert isinstance(results[0], InsertedImage)
    assert results[1:] == [None, None, None]
    assert await stored_owners(db) == {images[0].id: "alice"}


async def test_row_postgres_refuses_fails_only_its_own_create(
    inserts: ImageInserts, make_key: KeyMaker, db: AsyncEngine
) -> None:
    key = await make_key("alice")
    # The API refuses such a name before it gets here; PostgreSQL refuses NUL in text anyway.
    images = [new_image(key), new_image(key, filename="nul\x00.jpg"), new_image(key)]

    results = await asyncio.gather(
        *(inserts.insert(image) for image in images), return_exceptions=True
    )

    assert isinstance(results[0], InsertedImage)
    assert isinstance(results[1], Exception) and not isinstance(results[1], InsertedImage)
    assert isinstance(results[2], InsertedImage)
    assert set(await stored_owners(db)) == {images[0].id, images[2].id}


async def test_cancelled_create_leaves_the_others_answered(
    inserts: ImageInserts, make_key: KeyMaker
) -> None:
    key = await make_key("alice")
    tasks = [asyncio.create_task(inserts.insert(new_image(key))) for _ in range(5)]
    await asyncio.sleep(0)  # every create has handed in its row
    tasks[2].cancel()

    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(results[2], asyncio.CancelledError)
    assert all(isinstance(result, InsertedImage) for n, result in enumerate(results) if n != 2)


async def test_close_waits_for_rows_handed_in(
    inserts: ImageInserts, make_key: KeyMaker, db: AsyncEngine
) -> None:
    key = await make_key("alice")
    tasks = [asyncio.create_task(inserts.insert(new_image(key))) for _ in range(5)]
    await asyncio.sleep(0)

    await inserts.close()

    assert len(await stored_owners(db)) == 5
    assert all(isinstance(result, InsertedImage) for result in await asyncio.gather(*tasks))
