"""A database that goes away under a running API: every route that needs it answers 503 in the
one error shape, the process keeps serving, and liveness stays green. So does a database that
goes silent (nothing refused, nothing answered): within the API's wait for a statement, and the
API serves again on its own once the database answers, as it does when the database was silent
from its start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from service.config import ApiSettings, DatabaseSettings
from service.db import alembic_config, create_sessionmaker
from service.deps import get_session
from service.keys import create_key
from service.main import create_app
from tests.conftest import KeyMaker, api_client, assert_problem
from tests.database_relay import DatabaseRelay

WAIT_S = 1.0  # the API's wait for a statement's answer, and for a new connection, here
# Each answer: the wait, then SQLAlchemy's own 2 s trying to close the connection politely.
ANSWERED_WITHIN_S = WAIT_S + 2 + 3
IMAGE = {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10}


@pytest.fixture
def doomed_database() -> Iterator[EmbeddedPostgres]:
    postgres = EmbeddedPostgres().start()
    command.upgrade(
        alembic_config(DatabaseSettings(database_url=postgres.url).sqlalchemy_url), "head"
    )
    yield postgres
    postgres.stop()


async def test_api_answers_503_while_database_is_down(
    api_settings: ApiSettings, doomed_database: EmbeddedPostgres
) -> None:
    url = DatabaseSettings(database_url=doomed_database.url).sqlalchemy_url
    engine = create_async_engine(url)
    key = await create_key(create_sessionmaker(engine), owner="alice")
    await engine.dispose()
    app = create_app(api_settings.model_copy(update={"database_url": url}))
    headers = {"Authorization": f"Bearer {key}"}
    body = {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers=headers
        ) as http:
            created = await http.post("/v1/images", json=body)
            assert created.status_code == 201
            doomed_database.stop()

            # Creates in flight together: each of them gets the 503.
            together = [http.post("/v1/images", json=body) for _ in range(5)]
            responses = [
                *await asyncio.gather(*together),
                await http.get("/v1/images"),
                await http.get(f"/v1/images/{created.json()['id']}"),
                await http.delete(f"/v1/images/{created.json()['id']}"),
                await http.get("/readyz"),
            ]
            alive = await http.get("/healthz")

    for response in responses:
        assert_problem(response, 503, "dependency_unavailable")
    assert alive.status_code == 200


async def test_orm_route_answers_503_when_its_session_cannot_connect(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # A real engine aimed at a loopback port nothing listens on: connecting is refused.
    unreachable = create_async_engine(f"postgresql+asyncpg://picforge@127.0.0.1:{free_port()}/x")

    async def unreachable_session() -> AsyncIterator[AsyncSession]:
        async with create_sessionmaker(unreachable)() as session:
            yield session

    app.dependency_overrides[get_session] = unreachable_session
    try:
        response = await client.get("/v1/images")
    finally:
        app.dependency_overrides.clear()
        await unreachable.dispose()

    assert_problem(response, 503, "dependency_unavailable")


@dataclass
class RelayedApi:
    """The API, reaching the database through `relay` and waiting `WAIT_S` for it, with one
    image created while the database answered."""

    app: FastAPI
    relay: DatabaseRelay
    http: httpx.AsyncClient
    image: str  # the image's path


def _relayed(settings: ApiSettings, relayed_url: str) -> ApiSettings:
    return settings.model_copy(
        update={
            "database_url": relayed_url,
            "db_command_timeout_s": WAIT_S,
            "db_connect_timeout_s": WAIT_S,
        }
    )


@pytest.fixture
async def relayed_api(
    api_settings: ApiSettings, database_url: str, make_key: KeyMaker
) -> AsyncIterator[RelayedApi]:
    key = await make_key("alice")
    async with DatabaseRelay.to(database_url) as (relay, relayed_url):
        app = create_app(_relayed(api_settings, relayed_url))
        async with app.router.lifespan_context(app), api_client(app, key) as http:
            created = await http.post("/v1/images", json=IMAGE)
            assert created.status_code == 201
            yield RelayedApi(app, relay, http, f"/v1/images/{created.json()['id']}")


async def test_api_answers_503_while_database_is_silent_then_serves_again(
    relayed_api: RelayedApi, caplog: pytest.LogCaptureFixture
) -> None:
    http, image = relayed_api.http, relayed_api.image
    relayed_api.relay.silent = True
    started = time.monotonic()
    async with asyncio.timeout(60):  # without a bound of its own, the API would hang
        silent = [
            await http.get(image),  # on the pooled connection, which goes silent
            await http.post("/v1/images", json=IMAGE),  # on a new one, never answered
            await http.delete(image),
        ]
    waited_s = time.monotonic() - started
    relayed_api.relay.silent = False
    after = await http.get(image)

    for answer in silent:
        assert_problem(answer, 503, "dependency_unavailable")
    assert waited_s < len(silent) * ANSWERED_WITHIN_S
    assert after.status_code == 200, after.text
    # The log says which wait ran out, not a bare TimeoutError().
    assert f"a statement within {WAIT_S:g} s (PICFORGE_DB_COMMAND_TIMEOUT_S)" in caplog.text
    assert "did not answer the login of" in caplog.text
    assert f"within {WAIT_S:g} s (PICFORGE_DB_CONNECT_TIMEOUT_S)" in caplog.text


async def test_api_started_while_the_database_is_silent_serves_once_it_answers(
    api_settings: ApiSettings,
    database_url: str,
    make_key: KeyMaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The start-up check (service.startup) passed moments before: a failover since is an
    # outage to wait out like any other, not a reason to exit.
    key = await make_key("alice")
    async with DatabaseRelay.to(database_url) as (relay, relayed_url):
        app = create_app(_relayed(api_settings, relayed_url))
        relay.silent = True
        async with app.router.lifespan_context(app), api_client(app, key) as http:
            silent = await http.post("/v1/images", json=IMAGE)
            relay.silent = False
            answering = await http.post("/v1/images", json=IMAGE)

    assert "the database is unavailable" in caplog.text
    assert_problem(silent, 503, "dependency_unavailable")
    assert answering.status_code == 201, answering.text


def _silenced_once_answering(app: ASGIApp, relay: DatabaseRelay) -> ASGIApp:
    """`app`, with the database going silent as an answer starts: after the route's last
    statement, before its session's rollback."""

    async def silencing(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_then_silence(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                relay.silent = True

        await app(scope, receive, send_then_silence)

    return silencing


async def test_answer_stands_when_the_database_goes_silent_before_the_rollback(
    relayed_api: RelayedApi, caplog: pytest.LogCaptureFixture
) -> None:
    http, image = relayed_api.http, relayed_api.image
    silencing = httpx.ASGITransport(
        app=_silenced_once_answering(relayed_api.app, relayed_api.relay)
    )
    async with httpx.AsyncClient(
        transport=silencing, base_url=http.base_url, headers=http.headers
    ) as silenced:
        answered = await silenced.get(image)  # raises, if the app did
    relayed_api.relay.silent = False
    after = await http.get(image)

    assert answered.status_code == 200, answered.text
    assert image.endswith(answered.json()["id"])
    assert "did not take its rollback" in caplog.text
    assert after.status_code == 200, after.text
