"""worker/database_gate.py: which failures are the database's, the probe that decides, and a
worker started while the database is away."""

from __future__ import annotations

import asyncio
import time

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sqlalchemy_errors

from devstack.ports import free_port
from service.config import DatabaseSettings
from service.database_login import DatabaseLoginRefused
from service.db import create_engine, is_database_unavailable
from tests.database_relay import DatabaseRelay
from tests.worker.conftest import Images, StartWorker
from worker.database_gate import DatabaseGate

LOGIN_TIMEOUT_S = 1.0


def test_is_database_unavailable_for_refused_logins_lost_connections_and_what_wraps_them() -> None:
    refused = DatabaseLoginRefused("PostgreSQL refused the login of picforge_app (SQLSTATE 28P01)")
    wrapped = sqlalchemy_errors.OperationalError("SELECT 1", {}, ConnectionRefusedError())
    chained = RuntimeError("while recording")
    chained.__cause__ = refused

    for error in (refused, wrapped, chained, asyncpg.CannotConnectNowError("starting up")):
        assert is_database_unavailable(error), error
    for error in (ValueError("corrupt"), KeyError("x"), asyncpg.UniqueViolationError("dup")):
        assert not is_database_unavailable(error), error


async def test_gate_probe_answers_for_a_reachable_database_only(database_url: str) -> None:
    reachable = create_engine(DatabaseSettings(database_url=database_url))
    nowhere = create_engine(
        DatabaseSettings(db_host="127.0.0.1", db_port=free_port(), db_sslmode="disable")
    )
    try:
        assert await DatabaseGate(reachable, login_timeout_s=LOGIN_TIMEOUT_S).probe() is True
        gate = DatabaseGate(nowhere, login_timeout_s=LOGIN_TIMEOUT_S)
        assert await gate.probe() is False
        gate.close()
        assert not gate.is_open
    finally:
        await reachable.dispose()
        await nowhere.dispose()


async def test_gate_probe_of_a_silent_database_fails_in_time_then_answers_again(
    database_url: str,
) -> None:
    async with DatabaseRelay.to(database_url) as (relay, relayed_url):
        engine = create_engine(
            DatabaseSettings(database_url=relayed_url, db_connect_timeout_s=LOGIN_TIMEOUT_S)
        )
        gate = DatabaseGate(engine, login_timeout_s=LOGIN_TIMEOUT_S)
        try:
            assert await gate.probe() is True  # the pool now holds a connection
            relay.silent = True
            started = time.monotonic()
            probes = [await gate.probe(), await gate.probe()]  # the pooled one, then a new one
            waited_s = time.monotonic() - started
            relay.silent = False
            assert await gate.probe() is True
        finally:
            await engine.dispose()

    assert probes == [False, False]
    # Each probe: its bound (twice the login's), and SQLAlchemy's 2 s closing the connection.
    assert waited_s < 2 * (2 * LOGIN_TIMEOUT_S + 2 + 2)


async def test_a_worker_started_while_the_database_is_silent_renders_once_it_answers(
    images: Images, start_worker: StartWorker, hopper_png: bytes, database_url: str
) -> None:
    # The start-up check (worker.main.main) passed moments before: a failover since is an
    # outage to wait out, not a reason to exit with the queue full.
    async with DatabaseRelay.to(database_url) as (relay, relayed_url):
        relay.silent = True
        worker = await start_worker(database_url=relayed_url, db_connect_timeout_s=LOGIN_TIMEOUT_S)
        image_id = await images.create(hopper_png)
        await asyncio.sleep(3 * LOGIN_TIMEOUT_S)  # past the schema check's login
        assert not worker.task.done()
        relay.silent = False
        image = await images.wait_for(image_id, "ready", timeout_s=30)
        await worker.stop()

    assert [rendition.name for rendition in image.renditions] == ["thumb"]
