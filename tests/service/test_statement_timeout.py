"""The app role's statement timeout (migration 0010): a request whose statement waits behind a
lock is answered 503 once PostgreSQL cancels it, and its pooled connection serves again after."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy import make_url

from service.config import ApiSettings
from service.main import create_app
from tests.conftest import KeyMaker, api_client

APP_ROLE = "picforge_app"
TIMEOUT_S = 1
# Whatever the machine: an answer within this is the timeout's doing, not the lock's end.
ANSWERED_WITHIN_S = 5 * TIMEOUT_S


def as_role(database_url: str, role: str | None = None) -> str:
    """An asyncpg DSN of the suite's database, as `role` (the embedded server trusts local
    logins), or as its owner."""
    url = make_url(database_url).set(drivername="postgresql")
    if role is not None:
        url = url.set(username=role, password="")
    return url.render_as_string(hide_password=False)


async def test_app_role_statements_time_out_after_15_s(database_url: str) -> None:
    connection = await asyncpg.connect(as_role(database_url, APP_ROLE))
    try:
        assert await connection.fetchval("SHOW statement_timeout") == "15s"
    finally:
        await connection.close()


@pytest.fixture
async def impatient_app_role(database_url: str) -> AsyncIterator[None]:
    """The app role's timeout at `TIMEOUT_S` while the test runs (new logins take it up)."""
    owner = await asyncpg.connect(as_role(database_url))
    await owner.execute(f"ALTER ROLE {APP_ROLE} SET statement_timeout = '{TIMEOUT_S}s'")
    try:
        yield
    finally:
        await owner.execute(f"ALTER ROLE {APP_ROLE} SET statement_timeout = '15s'")
        await owner.close()


@pytest.fixture
async def app_role_client(
    api_settings: ApiSettings, database_url: str, make_key: KeyMaker, impatient_app_role: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The API logged in as the app role, as on AWS."""
    app_role_url = make_url(database_url).set(username=APP_ROLE, password="")
    settings = api_settings.model_copy(
        update={"database_url": app_role_url.render_as_string(hide_password=False)}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), api_client(app, await make_key("alice")) as http:
        yield http


async def test_requests_behind_a_held_lock_are_answered_503_by_the_timeout(
    app_role_client: httpx.AsyncClient, database_url: str
) -> None:
    body = {"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 10}
    created = await app_role_client.post("/v1/images", json=body)
    assert created.status_code == 201
    image = f"/v1/images/{created.json()['id']}"

    # Another session holds the images table, as a migration's ALTER TABLE would.
    holder = await asyncpg.connect(as_role(database_url))
    await holder.execute("BEGIN; LOCK TABLE images IN ACCESS EXCLUSIVE MODE")
    try:
        started = time.monotonic()
        blocked = [
            await app_role_client.get(image),
            await app_role_client.get("/v1/images"),
            await app_role_client.post("/v1/images", json=body),
        ]
        waited_s = time.monotonic() - started
    finally:
        await holder.close()  # the lock goes with its session
    after = await app_role_client.get(image)

    for answer in blocked:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "dependency_unavailable"
    assert waited_s < len(blocked) * ANSWERED_WITHIN_S
    assert after.status_code == 200
