"""Images left `processing` by a worker that died on the last delivery are failed as
`processing_failed`, not left for ever; images still being worked on are left alone."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.worker.conftest import Images, StartWorker, eventually
from worker.abandoned import abandoned_after_s
from worker.records import PROCESSING_FAILED


async def mark_processing(images: Images, image_id: uuid.UUID, *, since_s: float) -> None:
    """As if a worker had taken the image up `since_s` seconds ago, and never come back."""
    async with images.sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE images SET status = 'processing', "
                "updated_at = now() - make_interval(secs => :since_s) WHERE id = :image_id"
            ),
            {"since_s": since_s, "image_id": image_id},
        )


async def failed_with(images: Images, image_id: uuid.UUID, code: str) -> bool:
    image = await images.get(image_id)
    return image is not None and image.status == "failed" and image.error_code == code


async def test_worker_fails_image_processing_longer_than_every_delivery_could_take(
    images: Images, start_worker: StartWorker
) -> None:
    # 2 deliveries of at most 10 + 2 s: abandoned after 48 s.
    settings = {"worker_max_receive_count": 2, "worker_job_timeout_s": 10}
    idle_s = abandoned_after_s(max_receive_count=2, job_timeout_s=10, visibility_s=2)
    abandoned, busy = await images.add_row(), await images.add_row()
    await mark_processing(images, abandoned, since_s=idle_s + 5)
    await mark_processing(images, busy, since_s=idle_s - 10)

    worker = await start_worker(**settings)

    await eventually(
        lambda: failed_with(images, abandoned, PROCESSING_FAILED), what="the abandoned image failed"
    )
    assert worker.count("picforge_worker_images_failed_total", code=PROCESSING_FAILED) == 1
    still = await images.get(busy)
    assert still is not None and still.status == "processing"


async def test_abandoned_image_is_finished_by_a_later_delivery(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    image_id = await images.add_row(size_bytes=len(hopper_png))
    await mark_processing(images, image_id, since_s=3600)
    await start_worker(worker_max_receive_count=2)
    await eventually(lambda: failed_with(images, image_id, PROCESSING_FAILED), what="failed")

    # Its message, redriven from the dead-letter queue, or a new upload of the same key.
    await images.upload(image_id, hopper_png, "image/png")

    assert (await images.wait_for(image_id, "ready")).renditions
