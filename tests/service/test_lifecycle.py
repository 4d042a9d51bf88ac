"""The storage lifecycle on versioned buckets, through the real API and worker: an original is
uploaded once, a later upload is never rendered or served, an upload for a deleted image is
removed and so are the renditions a render of it wrote, even one cut off before taking them
back, images never uploaded expire and are swept, Idempotency-Keys are forgotten."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service import storage
from service.config import ApiSettings
from service.storage import ObjectsNotDeleted, renditions_prefix
from tests.conftest import TESTDATA, RenderGate
from tests.flow import create_image, fetch, upload, upload_image, upload_put, wait_until_finished
from tests.polling import eventually
from tests.queue import wait_until_queue_drained
from tests.service.state import all_versions
from worker import handlers, records
from worker.config import WorkerSettings
from worker.main import run_worker
from worker.metrics import Metrics

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

HOPPER_PNG = (TESTDATA / "good" / "hopper.png").read_bytes()


def red_png(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), (255, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


@asynccontextmanager
async def running_worker(settings: WorkerSettings) -> AsyncIterator[Metrics]:
    stop, metrics = asyncio.Event(), Metrics()
    task = asyncio.create_task(run_worker(settings, stop, metrics=metrics))
    try:
        yield metrics
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def original_versions(s3: S3Client, settings: ApiSettings, image_id: str) -> list[str]:
    listing = await s3.list_object_versions(
        Bucket=settings.uploads_bucket, Prefix=f"originals/{image_id}"
    )
    return [v["VersionId"] for v in listing.get("Versions", [])]


async def test_put_ticket_uploads_once_and_s3_refuses_a_second_put(
    client: httpx.AsyncClient, s3: S3Client, api_settings: ApiSettings
) -> None:
    created = await create_image(
        client,
        filename="a.png",
        content_type="image/png",
        size_bytes=len(HOPPER_PNG),
        upload_method="put",
    )

    first = await upload_put(created["upload"], HOPPER_PNG)
    second = await upload_put(created["upload"], HOPPER_PNG)

    assert first.status_code == 200, first.text
    assert second.status_code == 412, second.text
    assert "PreconditionFailed" in second.text
    assert len(await original_versions(s3, api_settings, created["id"])) == 1


async def test_reused_post_ticket_after_ready_changes_nothing_served_even_after_reprocess(
    client: httpx.AsyncClient,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
) -> None:
    async with running_worker(worker_settings):
        created = await upload_image(client, HOPPER_PNG, filename="h.png", content_type="image/png")
        ready = await wait_until_finished(client, created["id"])
        assert ready["status"] == "ready", ready
        served = {r["name"]: (await fetch(r["url"])).content for r in ready["renditions"]}
        [pinned] = await original_versions(s3, api_settings, created["id"])

        # POST tickets cannot be conditional: S3 takes the bytes (204) as a new version.
        reused = await upload(created["upload"], red_png(), content_type="image/png")
        assert reused.status_code == 204, reused.text
        await wait_until_queue_drained(sqs, api_settings.queue_url)
        assert await original_versions(s3, api_settings, created["id"]) == [pinned]

        assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202
        await wait_until_queue_drained(sqs, api_settings.queue_url)
        after = (await client.get(f"/v1/images/{created['id']}")).json()

    assert after["status"] == "ready"
    assert after["placeholder"] == ready["placeholder"]
    assert {r["name"]: (await fetch(r["url"])).content for r in after["renditions"]} == served
    assert await original_versions(s3, api_settings, created["id"]) == [pinned]


async def test_upload_after_delete_is_removed(
    client: httpx.AsyncClient,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
) -> None:
    async with running_worker(worker_settings):
        created = await create_image(
            client, filename="h.png", content_type="image/png", size_bytes=len(HOPPER_PNG)
        )
        assert (await client.delete(f"/v1/images/{created['id']}")).status_code == 204
        # What a render in flight during the DELETE leaves when taking its renditions back
        # fails: the redelivered event finds the image gone and removes them too.
        stray = f"{renditions_prefix(uuid.UUID(created['id']))}token/small-v.webp"
        await s3.put_object(Bucket=api_settings.renditions_bucket, Key=stray, Body=b"webp")

        late = await upload(created["upload"], HOPPER_PNG, content_type="image/png")
        assert late.status_code == 204, late.text
        await wait_until_queue_drained(sqs, api_settings.queue_url)

    assert await all_versions(s3, api_settings) == []


async def cut_worker_connections(db: AsyncEngine) -> None:
    """The fault README's table names: every connection but ours cut (`pg_terminate_backend`)."""
    async with db.begin() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        )


async def test_reprocess_of_image_deleted_mid_render_leaves_nothing_when_its_record_fails(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
    held_renders: RenderGate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A failed delivery comes back in 2 s rather than 60.
    settings = worker_settings.model_copy(update={"worker_visibility_timeout_s": 2})
    recording = records.record_ready
    cuts: list[uuid.UUID] = []

    async def record_ready_on_a_cut_connection(
        sessions: Any, image_id: uuid.UUID, **kwargs: Any
    ) -> Any:
        if not cuts:  # once: the redelivery finds the database back
            cuts.append(image_id)
            await cut_worker_connections(db)
        return await recording(sessions, image_id, **kwargs)

    async with running_worker(settings):
        held_renders.release.set()
        created = await upload_image(client, HOPPER_PNG, filename="h.png", content_type="image/png")
        ready = await wait_until_finished(client, created["id"])
        assert ready["status"] == "ready", ready
        held_renders.release.clear()
        held_renders.started.clear()
        assert (await client.post(f"/v1/images/{created['id']}/reprocess")).status_code == 202
        await asyncio.wait_for(held_renders.started.wait(), timeout=30)
        assert (await client.delete(f"/v1/images/{created['id']}")).status_code == 204
        assert await all_versions(s3, api_settings) == []

        # The render goes on, writes the renditions again under the same keys, and its record
        # fails: the delivery is retried, and finds the image gone.
        monkeypatch.setattr(records, "record_ready", record_ready_on_a_cut_connection)
        held_renders.release.set()
        await wait_until_queue_drained(sqs, api_settings.queue_url)

    assert cuts == [uuid.UUID(created["id"])]
    assert await all_versions(s3, api_settings) == []
    async with httpx.AsyncClient() as http:
        served = [(await http.get(r["url"])).status_code for r in ready["renditions"]]
    assert 200 not in served, served


async def test_image_deleted_mid_render_leaves_nothing_when_s3_refuses_the_take_back(
    client: httpx.AsyncClient,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
    held_renders: RenderGate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = worker_settings.model_copy(update={"worker_visibility_timeout_s": 2})
    erasing = storage.erase_versions
    refused: list[str] = []

    async def refuse_once(s3: S3Client, *, bucket: str, prefix: str, **kwargs: Any) -> int:
        if not refused:  # S3 answers the batch delete but keeps the objects, once
            refused.append(prefix)
            raise ObjectsNotDeleted(f"S3 refused to delete {prefix}")
        return await erasing(s3, bucket=bucket, prefix=prefix, **kwargs)

    async with running_worker(settings):
        created = await upload_image(client, HOPPER_PNG, filename="h.png", content_type="image/png")
        await asyncio.wait_for(held_renders.started.wait(), timeout=30)
        assert (await client.delete(f"/v1/images/{created['id']}")).status_code == 204

        # Whichever way the worker erases, its first erase after the DELETE is refused.
        monkeypatch.setattr(storage, "erase_versions", refuse_once)
        monkeypatch.setattr(handlers, "erase_versions", refuse_once)
        held_renders.release.set()
        await wait_until_queue_drained(sqs, api_settings.queue_url)

    assert refused == [renditions_prefix(uuid.UUID(created["id"]))]
    assert await all_versions(s3, api_settings) == []


async def backdate(db: AsyncEngine, table: str, seconds: int) -> None:
    async with db.begin() as connection:
        await connection.execute(
            text(f"UPDATE {table} SET created_at = created_at - make_interval(secs => :s)"),
            {"s": seconds},
        )


async def test_image_never_uploaded_expires_is_swept_and_a_late_upload_removed(
    client: httpx.AsyncClient,
    db: AsyncEngine,
    s3: S3Client,
    sqs: SQSClient,
    api_settings: ApiSettings,
    worker_settings: WorkerSettings,
) -> None:
    stale = await create_image(client, filename="a.png", content_type="image/png", size_bytes=9)
    await backdate(db, "images", 3600)
    fresh = await create_image(client, filename="b.png", content_type="image/png", size_bytes=9)
    settings = worker_settings.model_copy(update={"presign_expires_s": 300, "upload_grace_s": 900})

    async with running_worker(settings) as metrics:

        async def expired() -> bool:
            record = (await client.get(f"/v1/images/{stale['id']}")).json()
            return bool(record["status"] == "expired")

        await eventually(expired, what="the stale image expired")
        # The ticket was signed for 300 s; an upload S3 still accepts now is removed.
        late = await upload(stale["upload"], HOPPER_PNG[:9], content_type="image/png")
        assert late.status_code == 204, late.text
        await wait_until_queue_drained(sqs, api_settings.queue_url)
        swept = metrics.registry.get_sample_value(
            "picforge_worker_swept_total", {"kind": "expired_images"}
        )

    assert swept == 1
    assert (await client.get(f"/v1/images/{fresh['id']}")).json()["status"] == "awaiting_upload"
    assert await all_versions(s3, api_settings) == []
    refused = await client.post(f"/v1/images/{stale['id']}/reprocess")
    assert refused.status_code == 409
    assert (await client.delete(f"/v1/images/{stale['id']}")).status_code == 204


async def test_idempotency_key_expires_and_then_makes_a_new_image(
    client: httpx.AsyncClient, db: AsyncEngine, worker_settings: WorkerSettings
) -> None:
    body = {"filename": "a.png", "content_type": "image/png", "size_bytes": 9}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = (await client.post("/v1/images", json=body, headers=headers)).json()
    replay = await client.post("/v1/images", json=body, headers=headers)
    assert replay.json()["id"] == first["id"]

    await backdate(db, "idempotent_creates", 24 * 3600 + 1)
    later = await client.post("/v1/images", json=body, headers=headers)

    assert later.status_code == 201
    assert "Idempotent-Replayed" not in later.headers
    assert later.json()["id"] != first["id"]
    # The worker's sweep forgets old keys even if no request comes back with them.
    await backdate(db, "idempotent_creates", 24 * 3600 + 1)
    async with running_worker(worker_settings) as metrics:

        async def forgotten() -> bool:
            async with db.connect() as connection:
                left = await connection.scalar(text("SELECT count(*) FROM idempotent_creates"))
            return left == 0

        await eventually(forgotten, what="the key forgotten")
    assert (
        metrics.registry.get_sample_value(
            "picforge_worker_swept_total", {"kind": "idempotency_keys"}
        )
        == 1
    )


async def test_idempotent_replay_ticket_expires_when_the_first_did(
    client: httpx.AsyncClient, db: AsyncEngine, api_settings: ApiSettings
) -> None:
    body = {"filename": "a.png", "content_type": "image/png", "size_bytes": 9}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = (await client.post("/v1/images", json=body, headers=headers)).json()
    await backdate(db, "images", 200)

    replay = (await client.post("/v1/images", json=body, headers=headers)).json()
    await backdate(db, "images", 200)
    late = (await client.post("/v1/images", json=body, headers=headers)).json()

    assert replay["id"] == late["id"] == first["id"]
    # Created 200 s ago (as the backdated record says): 100 s left of its 300 s, not 300 more.
    first_expiry = datetime.fromisoformat(first["upload"]["expires_at"])
    replay_expiry = datetime.fromisoformat(replay["upload"]["expires_at"])
    assert abs((first_expiry - timedelta(seconds=200) - replay_expiry).total_seconds()) < 5
    # Past the first ticket's expiry a replay's ticket is good for a second at most.
    late_expiry = datetime.fromisoformat(late["upload"]["expires_at"])
    assert late_expiry - datetime.now(UTC) < timedelta(seconds=2)
    assert api_settings.presign_expires_s == 300
