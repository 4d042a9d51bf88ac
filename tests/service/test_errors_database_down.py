"""A database that goes away under a running API: every route that needs it answers 503 in the
one error shape, the process keeps serving, and liveness stays green."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from service.config import ApiSettings, DatabaseSettings
from service.db import alembic_config, create_sessionmaker
from service.deps import get_session
from service.keys import create_key
from service.main import create_app


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
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "dependency_unavailable"
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

    assert response.status_code == 503, response.text
    assert response.json()["code"] == "dependency_unavailable"
