"""Per-owner limits (`service.limits`) through the API, against real PostgreSQL: the creates
rate and its burst, both quotas at their boundaries and freed by DELETE, the reprocess rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ApiSettings
from service.in_flight import WAIT_S
from service.main import create_app
from tests.conftest import OWNER, KeyMaker, api_client, assert_problem
from tests.polling import eventually
from tests.service.routes.images.test_reprocess import queued_bodies, reprocess_jobs
from tests.service.state import add_rendition, set_status
from tests.service.test_lifecycle import backdate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

BODY = {"filename": "a.png", "content_type": "image/png", "size_bytes": 100}


@asynccontextmanager
async def limited_client(
    settings: ApiSettings, make_key: KeyMaker, **limits: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The API as `alice`, under these limit settings."""
    application = create_app(settings.model_copy(update=limits))
    async with (
        application.router.lifespan_context(application),
        api_client(application, await make_key(OWNER)) as http,
    ):
        yield http


async def create(http: httpx.AsyncClient, size_bytes: int = 100, **headers: str) -> httpx.Response:
    return await http.post("/v1/images", json={**BODY, "size_bytes": size_bytes}, headers=headers)


async def usage(db: AsyncEngine) -> tuple[int, int]:
    async with db.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT awaiting_upload, stored_bytes FROM owner_usage WHERE owner = :o"),
                {"o": OWNER},
            )
        ).one()
    return row.awaiting_upload, row.stored_bytes


async def test_create_burst_is_refused_with_a_retry_after_that_works(
    api_settings: ApiSettings, make_key: KeyMaker
) -> None:
    # One create every 3 s, three at once.
    async with limited_client(
        api_settings, make_key, create_rate_per_minute=20, create_burst=3
    ) as http:
        burst = [await create(http) for _ in range(3)]
        refused = await create(http)
        await asyncio.sleep(int(refused.headers["Retry-After"]))
        after_waiting = await create(http)

    assert [r.status_code for r in burst] == [201] * 3
    assert [r.headers["RateLimit"] for r in burst] == [
        '"creates";r=2;t=3',
        '"creates";r=1;t=6',
        '"creates";r=0;t=9',
    ]
    assert burst[0].headers["RateLimit-Policy"] == '"creates";q=20;w=60'
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "create_rate_limited"
    assert refused.json()["limit"] == "creates"
    assert refused.headers["Retry-After"] == "3"
    assert refused.headers["RateLimit"].startswith('"creates";r=0;')
    assert after_waiting.status_code == 201, after_waiting.text


async def test_create_refused_by_the_rate_inserts_nothing(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    async with limited_client(
        api_settings, make_key, create_rate_per_minute=6, create_burst=1
    ) as http:
        assert (await create(http)).status_code == 201
        assert (await create(http)).status_code == 429

    async with db.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM images")) == 1
    assert await usage(db) == (1, 100)


async def test_create_awaiting_upload_quota_refuses_at_the_boundary_and_frees_on_delete(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    async with limited_client(api_settings, make_key, max_awaiting_upload=2) as http:
        first, second = [(await create(http)).json() for _ in range(2)]
        refused = await create(http)
        # An uploaded image no longer counts; a deleted one neither.
        await set_status(db, first["id"], "processing")
        after_upload = await create(http)
        again_refused = await create(http)
        assert (await http.delete(f"/v1/images/{second['id']}")).status_code == 204
        after_delete = await create(http)

    assert refused.status_code == 429
    assert refused.json()["code"] == "awaiting_upload_quota_exceeded"
    assert refused.json()["limit"] == "awaiting_upload"
    assert "Retry-After" not in refused.headers  # waiting frees nothing
    assert "RateLimit" in refused.headers
    assert after_upload.status_code == 201
    assert again_refused.status_code == 429
    assert after_delete.status_code == 201


async def test_create_stored_bytes_quota_refuses_past_the_boundary_and_frees_on_delete(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    async with limited_client(api_settings, make_key, max_stored_bytes=1000) as http:
        first = (await create(http, 600)).json()
        over = await create(http, 401)
        to_the_byte = await create(http, 400)
        full = await create(http, 1)
        assert (await http.delete(f"/v1/images/{first['id']}")).status_code == 204
        after_delete = await create(http, 600)

    assert over.status_code == 429
    assert over.json()["code"] == "stored_bytes_quota_exceeded"
    assert over.json()["limit"] == "stored_bytes"
    assert "1000" in over.json()["detail"]
    assert to_the_byte.status_code == 201
    assert full.status_code == 429
    assert after_delete.status_code == 201
    assert await usage(db) == (2, 1000)


async def test_stored_bytes_count_renditions_and_free_them_on_delete(
    client: httpx.AsyncClient, db: AsyncEngine, s3: S3Client, api_settings: ApiSettings
) -> None:
    image = (await create(client, 1000)).json()
    await set_status(db, image["id"], "ready")
    await add_rendition(db, s3, api_settings, image["id"], "thumb")  # 12 bytes each
    await add_rendition(db, s3, api_settings, image["id"], "small")
    assert await usage(db) == (0, 1024)
    # The worker's upsert of a rendition rendered anew, at another size.
    async with db.begin() as connection:
        await connection.execute(
            text("UPDATE renditions SET size_bytes = 112 WHERE name = 'thumb'")
        )
    assert await usage(db) == (0, 1124)

    assert (await client.delete(f"/v1/images/{image['id']}")).status_code == 204

    assert await usage(db) == (0, 0)


async def test_expired_image_frees_both_quotas(client: httpx.AsyncClient, db: AsyncEngine) -> None:
    image = (await create(client, 500)).json()
    assert await usage(db) == (1, 500)

    await set_status(db, image["id"], "expired")

    assert await usage(db) == (0, 0)


async def test_create_with_idempotency_key_is_limited_but_a_replay_is_answered(
    api_settings: ApiSettings, make_key: KeyMaker
) -> None:
    async with limited_client(
        api_settings, make_key, create_rate_per_minute=6, create_burst=1
    ) as http:
        first = await create(http, **{"Idempotency-Key": "one"})
        another = await create(http, **{"Idempotency-Key": "two"})
        replay = await create(http, **{"Idempotency-Key": "one"})

    assert first.status_code == 201
    assert first.headers["RateLimit"] == '"creates";r=0;t=10'
    assert another.status_code == 429
    assert another.json()["code"] == "create_rate_limited"
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    assert "RateLimit" not in replay.headers  # it took nothing: as documented


async def test_expired_idempotency_key_is_not_replayed_when_the_rate_refuses(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    async with limited_client(
        api_settings, make_key, create_rate_per_minute=1, create_burst=1
    ) as http:
        first = await create(http, **{"Idempotency-Key": "one"})
        await backdate(db, "idempotent_creates", api_settings.idempotency_key_ttl_s + 1)
        later = await create(http, **{"Idempotency-Key": "one"})

    assert first.status_code == 201
    # Past its time to live the key makes a new image, and this owner may not make one now.
    assert later.status_code == 429, later.text
    assert later.json()["code"] == "create_rate_limited"


async def test_an_owners_requests_in_flight_are_capped_while_others_are_answered(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    application = create_app(api_settings.model_copy(update={"max_in_flight_per_owner": 2}))
    async with (
        application.router.lifespan_context(application),
        api_client(application, await make_key(OWNER)) as alice,
        api_client(application, await make_key("bob")) as bob,
    ):
        image = (await create(alice)).json()
        theirs = (await create(bob)).json()

        async def waiting_on_the_lock() -> bool:
            # A connection of its own: pg_stat_activity is a snapshot per transaction.
            async with db.connect() as connection:
                count = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                )
            return count == 2

        # The test holds the image's row lock: the owner's two DELETEs wait for it, in flight.
        async with db.connect() as locker:
            await locker.execute(
                text("SELECT 1 FROM images WHERE id = :id FOR UPDATE"), {"id": image["id"]}
            )
            path = f"/v1/images/{image['id']}"
            deletes = [asyncio.create_task(alice.delete(path)) for _ in range(2)]
            await eventually(waiting_on_the_lock, what="both DELETEs waiting")
            started = time.monotonic()
            third = await alice.get(path)  # waits for a place, then gives up
            waited_s = time.monotonic() - started
            other_owner = await bob.get(f"/v1/images/{theirs['id']}")
            queued = asyncio.create_task(alice.get("/v1/images"))
            await asyncio.sleep(0.2)
            await locker.rollback()  # the DELETEs go on, and give their places back
        answered = sorted(r.status_code for r in await asyncio.gather(*deletes))
        served = await queued

    problem = assert_problem(third, 429, "concurrency_limited")
    assert problem["limit"] == "in_flight"
    assert third.headers["Retry-After"] == "1"
    assert WAIT_S <= waited_s < WAIT_S + 1
    assert other_owner.status_code == 200
    assert answered == [204, 404]
    assert served.status_code == 200  # it waited in line for a place, and got one


async def test_create_with_limits_off_is_never_refused(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine
) -> None:
    async with limited_client(
        api_settings, make_key, limits_enabled=False, create_burst=1, max_awaiting_upload=0
    ) as http:
        responses = [await create(http) for _ in range(3)]

    assert [r.status_code for r in responses] == [201] * 3
    assert "RateLimit" not in responses[0].headers
    assert await usage(db) == (3, 300)  # counted all the same


@pytest.mark.parametrize("concurrency", [20])
async def test_create_burst_at_once_lets_exactly_the_burst_through(
    api_settings: ApiSettings, make_key: KeyMaker, concurrency: int
) -> None:
    async with limited_client(
        api_settings, make_key, create_rate_per_minute=1, create_burst=5
    ) as http:
        responses = await asyncio.gather(*(create(http) for _ in range(concurrency)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [429] * (concurrency - 5)


async def test_reprocess_rate_counts_only_queued_renders(
    api_settings: ApiSettings, make_key: KeyMaker, db: AsyncEngine, sqs: SQSClient
) -> None:
    async with limited_client(api_settings, make_key, reprocess_rate_per_minute=1) as http:
        image = (await create(http)).json()
        await set_status(db, image["id"], "ready")
        queued = await http.post(f"/v1/images/{image['id']}/reprocess")
        coalesced = await http.post(f"/v1/images/{image['id']}/reprocess")
        # The worker recorded the render: the next one would queue, and the rate refuses it.
        async with db.begin() as connection:
            await connection.execute(text("UPDATE images SET reprocess_queued_at = NULL"))
        refused = await http.post(f"/v1/images/{image['id']}/reprocess")

    assert queued.status_code == 202
    assert queued.headers["RateLimit-Policy"] == '"reprocesses";q=1;w=60'
    assert queued.headers["RateLimit"] == '"reprocesses";r=0;t=60'
    assert coalesced.status_code == 202
    assert refused.status_code == 429
    assert refused.json()["code"] == "reprocess_rate_limited"
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert len(reprocess_jobs(await queued_bodies(sqs, api_settings.queue_url))) == 1
    async with db.connect() as connection:
        # The refused claim rolled back: a later reprocess may still queue.
        assert await connection.scalar(text("SELECT reprocess_queued_at FROM images")) is None
