"""`service.api_client`, the CLI's client of the public API: it waits out a rate limit's
`Retry-After` by itself, and reports a quota's refusal at once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from service.api_client import ApiClient, ClientError
from service.db import create_sessionmaker
from service.owner_limits import set_limits
from tests.conftest import OWNER, LiveApi


async def limit_alice(database_url: str, **values: int) -> None:
    engine = create_async_engine(database_url)
    try:
        await set_limits(create_sessionmaker(engine), owner=OWNER, values=values)
    finally:
        await engine.dispose()


async def create(api: ApiClient) -> str:
    record = await api.create_image(filename="a.png", content_type="image/png", size_bytes=10)
    return str(record["id"])


async def test_api_client_waits_out_a_rate_limit_and_retries(
    live_api: LiveApi, database_url: str
) -> None:
    await limit_alice(database_url, create_rate_per_minute=60, create_burst=1)
    started = time.monotonic()

    async with ApiClient(live_api.url, live_api.key) as api:
        created = [await create(api) for _ in range(3)]

    assert len(set(created)) == 3
    assert time.monotonic() - started >= 1.5  # one a second, after the first


async def test_api_client_reports_a_quota_refusal_without_waiting(
    live_api: LiveApi, database_url: str
) -> None:
    await limit_alice(database_url, max_awaiting_upload=1)

    async with ApiClient(live_api.url, live_api.key) as api:
        await create(api)
        with pytest.raises(ClientError) as refused:
            await create(api)

    assert refused.value.code == "awaiting_upload_quota_exceeded"
