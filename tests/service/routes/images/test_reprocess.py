"""`POST /v1/images/{id}/reprocess`: an uploaded original goes back on the worker's queue."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.config import ApiSettings
from service.db import create_sessionmaker
from service.jobs import reprocess_message
from tests.flow import create_image
from tests.service.state import set_status
from worker.records import record_failure

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient


async def queued_bodies(sqs: SQSClient, queue_url: str) -> list[str]:
    """Every message waiting on the queue (no worker runs in these tests)."""
    bodies: list[str] = []
    while True:
        received = await sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = received.get("Messages", [])
        if not messages:
            return bodies
        bodies += [message["Body"] for message in messages]


@pytest.fixture
def api_settings(api_settings: ApiSettings) -> ApiSettings:
    # Fifty reprocesses at once, all in flight: coalescing is the subject here, not the cap on
    # an owner's requests in flight (tests/service/test_limits.py).
    return api_settings.model_copy(update={"max_in_flight_per_owner": 50})


def reprocess_jobs(bodies: list[str]) -> list[str]:
    return [body for body in bodies if "picforge.reprocess" in body]


@pytest.mark.parametrize("status", ["ready", "failed"])
async def test_reprocess_image_queues_job_for_worker(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    sqs: SQSClient,
    api_settings: ApiSettings,
    status: str,
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], status)

    response = await client.post(f"/v1/images/{created['id']}/reprocess")

    assert response.status_code == 202, response.text
    assert response.json()["id"] == created["id"]
    assert response.json()["status"] == status
    jobs = [
        body
        for body in await queued_bodies(sqs, api_settings.queue_url)
        if "picforge.reprocess" in body
    ]
    assert jobs == [reprocess_message(uuid.UUID(created["id"]))]


async def test_reprocess_image_while_first_render_runs_queues_nothing(
    client: httpx.AsyncClient, db: AsyncEngine, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], "processing")

    response = await client.post(f"/v1/images/{created['id']}/reprocess")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "processing"
    assert reprocess_jobs(await queued_bodies(sqs, api_settings.queue_url)) == []


async def test_reprocess_image_fifty_times_at_once_queues_one_job(
    client: httpx.AsyncClient, db: AsyncEngine, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], "ready")

    responses = await asyncio.gather(
        *(client.post(f"/v1/images/{created['id']}/reprocess") for _ in range(50))
    )

    assert [response.status_code for response in responses] == [202] * 50
    assert all(response.json()["status"] == "ready" for response in responses)
    jobs = reprocess_jobs(await queued_bodies(sqs, api_settings.queue_url))
    assert jobs == [reprocess_message(uuid.UUID(created["id"]))]


async def test_reprocess_image_queues_again_once_the_worker_recorded_the_last(
    client: httpx.AsyncClient, db: AsyncEngine, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], "ready")
    assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202
    await record_failure(
        create_sessionmaker(db), uuid.UUID(created["id"]), code="corrupt_image", message="x"
    )

    assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202

    jobs = reprocess_jobs(await queued_bodies(sqs, api_settings.queue_url))
    assert len(jobs) == 2


async def test_reprocess_image_queues_again_when_the_last_claim_is_stale(
    client: httpx.AsyncClient, db: AsyncEngine, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], "ready")
    assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202
    stale = api_settings.reprocess_coalesce_s + 1
    async with db.begin() as connection:
        await connection.execute(
            text(f"UPDATE images SET reprocess_queued_at = now() - interval '{stale} seconds'")
        )

    assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202

    assert len(reprocess_jobs(await queued_bodies(sqs, api_settings.queue_url))) == 2


async def test_reprocess_image_refuses_image_not_uploaded(
    client: httpx.AsyncClient, sqs: SQSClient, api_settings: ApiSettings
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)

    response = await client.post(f"/v1/images/{created['id']}/reprocess")

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "image_not_uploaded"
    assert not any(
        "picforge.reprocess" in body for body in await queued_bodies(sqs, api_settings.queue_url)
    )


async def test_reprocess_image_of_other_owner_is_not_found(
    client: httpx.AsyncClient,
    other_client: httpx.AsyncClient,
    db: AsyncEngine,
    sqs: SQSClient,
    api_settings: ApiSettings,
) -> None:
    created = await create_image(client, filename="a", content_type="image/png", size_bytes=9)
    await set_status(db, created["id"], "ready")

    response = await other_client.post(f"/v1/images/{created['id']}/reprocess")

    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"
    assert not any(
        "picforge.reprocess" in body for body in await queued_bodies(sqs, api_settings.queue_url)
    )


async def test_reprocess_missing_image_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/images/{uuid.uuid4()}/reprocess")

    assert response.status_code == 404
    assert response.json()["code"] == "image_not_found"
