"""`/healthz` and `/readyz`: alive always; ready only while the database and both buckets are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI

from service.config import ApiSettings
from service.main import create_app
from service.readiness import Readiness
from tests.conftest import KeyMaker, api_client
from tests.polling import eventually

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def test_healthz_answers_ok(anonymous_client: httpx.AsyncClient) -> None:
    response = await anonymous_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_ok_while_every_dependency_answers(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_names_the_bucket_that_is_gone(
    anonymous_client: httpx.AsyncClient, s3: S3Client, api_settings: ApiSettings
) -> None:
    await s3.delete_bucket(Bucket=api_settings.renditions_bucket)

    response = await anonymous_client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "dependency_unavailable"
    assert response.json()["detail"] == "unreachable: renditions bucket"
    assert (await anonymous_client.get("/healthz")).status_code == 200


@asynccontextmanager
async def running_app(settings: ApiSettings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_readyz_turns_unready_within_seconds_of_an_outage(
    api_settings: ApiSettings, s3: S3Client
) -> None:
    settings = api_settings.model_copy(update={"readiness_cache_s": 0.5})
    async with running_app(settings) as app, api_client(app, None) as http:
        assert (await http.get("/readyz")).status_code == 200
        await s3.delete_bucket(Bucket=settings.renditions_bucket)

        async def unready() -> bool:
            return (await http.get("/readyz")).status_code == 503

        await eventually(unready, timeout_s=5, what="/readyz to report the outage")


async def test_readyz_flood_checks_once_and_leaves_the_pool_to_requests(
    api_settings: ApiSettings, make_key: KeyMaker
) -> None:
    # One pooled connection for requests: a /readyz that took it would make /v1 wait. The
    # owner may have all 20 of its requests in flight.
    settings = api_settings.model_copy(
        update={"db_pool_size": 1, "readiness_cache_s": 30, "max_in_flight_per_owner": 20}
    )
    async with running_app(settings) as app, api_client(app, await make_key("alice")) as http:
        flood = [http.get("/readyz") for _ in range(200)]
        requests = [http.get("/v1/images") for _ in range(20)]

        responses = await asyncio.gather(*flood, *requests)

        readiness: Readiness = app.state.resources.readiness
        assert [r.status_code for r in responses] == [200] * 220
        assert readiness.runs == 1
