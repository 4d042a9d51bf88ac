"""`/healthz` and `/readyz`: alive always; ready only while the database and both buckets are."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from service.config import ApiSettings

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
