"""The app role's timeouts (migration 0010): a request whose statement waits behind a lock is
answered 503 once PostgreSQL cancels it; a session left idle in a transaction is ended with its
locks, so whoever waited for them goes on; the worker's sweeps, set-wide, wait for a lock (or
work through a backlog) however long it takes; and one worker reconciles at a time, however
long its run."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import make_url

from devstack.postgres import APP_ROLE, as_app_role
from service.config import ApiSettings, DatabaseSettings
from service.db import create_engine, create_sessionmaker
from service.main import create_app
from tests.conftest import KeyMaker, api_client, assert_problem
from worker.config import WorkerSettings
from worker.metrics import Metrics
from worker.reconciling import open_reconcile_context, reconcile_if_alone
from worker.records import fail_abandoned
from worker.sweep import expire_unuploaded, forget_idempotency_keys

MIGRATED = {"statement_timeout": "15s", "idle_in_transaction_session_timeout": "1min"}
TIMEOUT_S = 1
# Whatever the machine: an answer within this is the timeout's doing, not the lock's end.
ANSWERED_WITHIN_S = 5 * TIMEOUT_S
IMAGE = {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10}


def dsn(database_url: str) -> str:
    """`database_url` in asyncpg's form."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def test_app_role_has_the_migrated_timeouts(database_url: str) -> None:
    connection = await asyncpg.connect(dsn(as_app_role(database_url)))
    try:
        shown = {name: await connection.fetchval(f"SHOW {name}") for name in MIGRATED}
    finally:
        await connection.close()
    assert shown == MIGRATED


@asynccontextmanager
async def role_timeouts(database_url: str, **timeouts: str) -> AsyncIterator[None]:
    """The app role's `timeouts` changed while the block runs (each login takes them up), and
    set back to the migrated ones after."""
    owner = await asyncpg.connect(dsn(database_url))
    try:
        for name, value in timeouts.items():
            await owner.execute(f"ALTER ROLE {APP_ROLE} SET {name} = '{value}'")
        yield
    finally:
        for name in timeouts:
            await owner.execute(f"ALTER ROLE {APP_ROLE} SET {name} = '{MIGRATED[name]}'")
        await owner.close()


@asynccontextmanager
async def app_role_api(
    api_settings: ApiSettings, database_url: str, key: str, **timeouts: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API logged in as the app role, as on AWS, with the role's `timeouts`."""
    app = create_app(api_settings.model_copy(update={"database_url": as_app_role(database_url)}))
    async with (
        role_timeouts(database_url, **timeouts),
        app.router.lifespan_context(app),
        api_client(app, key) as http,
    ):
        yield http


async def test_requests_behind_a_held_lock_are_answered_503_by_the_timeout(
    api_settings: ApiSettings, database_url: str, make_key: KeyMaker
) -> None:
    key = await make_key("alice")
    async with app_role_api(
        api_settings, database_url, key, statement_timeout=f"{TIMEOUT_S}s"
    ) as http:
        created = await http.post("/v1/images", json=IMAGE)
        assert created.status_code == 201
        image = f"/v1/images/{created.json()['id']}"

        # Another session holds the images table, as a migration's ALTER TABLE would.
        holder = await asyncpg.connect(dsn(database_url))
        await holder.execute("BEGIN; LOCK TABLE images IN ACCESS EXCLUSIVE MODE")
        try:
            started = time.monotonic()
            blocked = [
                await http.get(image),
                await http.get("/v1/images"),
                await http.post("/v1/images", json=IMAGE),
            ]
            waited_s = time.monotonic() - started
        finally:
            await holder.close()  # the lock goes with its session
        after = await http.get(image)

    for answer in blocked:
        assert_problem(answer, 503, "dependency_unavailable")
    assert waited_s < len(blocked) * ANSWERED_WITHIN_S
    assert after.status_code == 200


async def test_a_transaction_left_idle_is_ended_and_its_lock_freed(
    api_settings: ApiSettings, database_url: str, make_key: KeyMaker
) -> None:
    """A process of the app role stalls holding an image's row lock (as a DELETE does across
    its S3 calls): the DELETE that waits for that lock goes through once the server ends the
    stalled session."""
    key = await make_key("alice")
    async with app_role_api(
        api_settings, database_url, key, idle_in_transaction_session_timeout=f"{TIMEOUT_S}s"
    ) as http:
        created = await http.post("/v1/images", json=IMAGE)
        image_id = uuid.UUID(created.json()["id"])
        stalled = await asyncpg.connect(dsn(as_app_role(database_url)))
        try:
            await stalled.execute("BEGIN")
            await stalled.execute("SELECT 1 FROM images WHERE id = $1 FOR UPDATE", image_id)

            started = time.monotonic()
            deleted = await http.delete(f"/v1/images/{image_id}")
            waited_s = time.monotonic() - started
            gone = await http.get(f"/v1/images/{image_id}")
            ended = stalled.is_closed()  # by the server
        finally:
            await stalled.close()

    assert deleted.status_code == 204
    assert waited_s < ANSWERED_WITHIN_S
    assert gone.status_code == 404
    assert ended


async def test_the_sweeps_wait_for_a_lock_in_their_way_instead_of_failing(
    database_url: str,
) -> None:
    """Each of them is one statement over every row it concerns: held to a request's timeout,
    a lock (or a backlog longer than it) would fail it at every run, for as long as it lasts."""
    engine = create_engine(DatabaseSettings(database_url=as_app_role(database_url)), pool_size=3)
    sessions = create_sessionmaker(engine)
    try:
        async with role_timeouts(database_url, statement_timeout=f"{TIMEOUT_S}s"):
            holder = await asyncpg.connect(dsn(database_url))
            await holder.execute(
                "BEGIN; LOCK TABLE images, idempotent_creates IN ACCESS EXCLUSIVE MODE"
            )
            sweeping = asyncio.gather(
                expire_unuploaded(sessions, older_than_s=3600),
                fail_abandoned(sessions, idle_s=3600, message="abandoned"),
                forget_idempotency_keys(sessions, older_than_s=3600),
            )
            await asyncio.sleep(2 * TIMEOUT_S)
            waiting = not sweeping.done()
            await holder.close()
            expired, failed, forgotten = await sweeping
    finally:
        await engine.dispose()
    assert waiting
    assert (expired, failed, forgotten) == ([], [], 0)


async def test_one_worker_reconciles_at_a_time_however_long_its_run(
    worker_settings: WorkerSettings, database_url: str
) -> None:
    """A run longer than the idle-in-transaction timeout keeps its lock: a second worker
    trying meanwhile is turned away, and the run finishes."""
    settings = worker_settings.model_copy(update={"database_url": as_app_role(database_url)})
    async with (
        role_timeouts(database_url, idle_in_transaction_session_timeout=f"{TIMEOUT_S}s"),
        AsyncExitStack() as stack,
    ):
        # Opened under the lowered timeout: each login takes up the role's settings.
        context = await open_reconcile_context(stack, settings)
        # The first run's walk waits on this lock: it lasts past the timeout.
        holder = await asyncpg.connect(dsn(database_url))
        await holder.execute("BEGIN; LOCK TABLE images IN ACCESS EXCLUSIVE MODE")
        try:
            first = asyncio.create_task(reconcile_if_alone(context, Metrics()))
            await asyncio.sleep(2 * TIMEOUT_S)
            second = await asyncio.wait_for(
                reconcile_if_alone(context, Metrics()), ANSWERED_WITHIN_S
            )
        finally:
            await holder.close()
        fixes = await first
    assert second is None
    assert fixes == []
