"""Reprocess jobs (`service.jobs.reprocess_message`): the original rendered again with today's
presets; a `ready` image never leaves `ready`, a `failed` one gets another chance."""

from __future__ import annotations

import asyncio
import uuid

from service.jobs import reprocess_message
from service.models import Image
from service.storage import original_key, rendition_key
from tests.worker.conftest import Images, StartWorker, eventually, png_bytes
from worker.renditions import Preset

FIRST_PRESETS = (Preset("thumb", 128, 128), Preset("small", 320, 320))
LATER_PRESETS = (Preset("thumb", 128, 128), Preset("wide", 640, 360, format="jpeg", fit="cover"))


async def make_ready(images: Images, start_worker: StartWorker, data: bytes) -> Image:
    worker = await start_worker(presets=FIRST_PRESETS)
    image_id = await images.create(data)
    image = await images.wait_for(image_id, "ready")
    await worker.stop()
    return image


async def send_reprocess(images: Images, image_id: uuid.UUID) -> None:
    await images.sqs.send_message(
        QueueUrl=images.stack.queue_url, MessageBody=reprocess_message(image_id)
    )


async def test_reprocess_replaces_renditions_of_ready_image_without_leaving_ready(
    images: Images, start_worker: StartWorker
) -> None:
    before = await make_ready(images, start_worker, png_bytes(800, 600))
    seen: set[str] = set()

    async def watch_status() -> None:
        while True:
            image = await images.get(before.id)
            assert image is not None
            seen.add(image.status)
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watch_status())
    await start_worker(presets=LATER_PRESETS)
    await send_reprocess(images, before.id)
    after = await eventually(
        lambda: _with_renditions(images, before.id, {"thumb", "wide"}), what="the new renditions"
    )
    watching.cancel()

    assert seen == {"ready"}
    assert {(r.name, r.width, r.height, r.format) for r in after.renditions} == {
        ("thumb", 128, 96, "webp"),
        ("wide", 640, 360, "jpeg"),
    }
    thumb, wide = LATER_PRESETS
    expected = sorted(
        [
            rendition_key(before.id, before.rendition_token, "thumb", thumb.version, "webp"),
            rendition_key(before.id, before.rendition_token, "wide", wide.version, "jpg"),
        ]
    )

    async def only_the_new_objects() -> bool:
        # The superseded objects are deleted after the new record commits.
        return await images.rendition_keys() == expected

    await eventually(only_the_new_objects, what="only the new renditions in S3")


async def test_reprocess_after_preset_change_writes_rendition_under_new_key(
    images: Images, start_worker: StartWorker
) -> None:
    before = await make_ready(images, start_worker, png_bytes(800, 600))
    old_thumb = next(r for r in before.renditions if r.name == "thumb")
    sharper = (Preset("thumb", 128, 128, quality=95), Preset("small", 320, 320))
    await start_worker(presets=sharper)

    await send_reprocess(images, before.id)
    after = await eventually(
        lambda: _with_thumb_not_at(images, before.id, old_thumb.key), what="the new thumb"
    )

    # A CDN caches a rendition forever: changed bytes need a new URL, and the old object goes.
    new_thumb = next(r for r in after.renditions if r.name == "thumb")
    assert new_thumb.key == rendition_key(
        before.id, before.rendition_token, "thumb", sharper[0].version, "webp"
    )
    assert new_thumb.size_bytes != old_thumb.size_bytes
    small = next(r for r in after.renditions if r.name == "small")
    assert small.key == next(r.key for r in before.renditions if r.name == "small")

    async def old_thumb_gone() -> bool:
        # The superseded object is deleted after the new record commits, not with it.
        return await images.rendition_keys() == sorted([new_thumb.key, small.key])

    await eventually(old_thumb_gone, what="the old thumb deleted from S3")


async def _with_thumb_not_at(images: Images, image_id: uuid.UUID, key: str) -> Image | None:
    image = await images.get(image_id)
    thumbs = [r for r in image.renditions if r.name == "thumb"] if image else []
    return image if thumbs and thumbs[0].key != key else None


async def _with_renditions(images: Images, image_id: uuid.UUID, names: set[str]) -> Image | None:
    image = await images.get(image_id)
    return image if image and {r.name for r in image.renditions} == names else None


async def test_reprocess_renders_failed_image_again(
    images: Images,
    start_worker: StartWorker,
    hopper_png: bytes,
) -> None:
    image_id = await images.add_row(size_bytes=len(hopper_png))
    await images.mark_failed(image_id, code="corrupt_image")
    worker = await start_worker()
    await images.upload(image_id, hopper_png, "image/png")
    # The upload's own event finds a verdict on the image already, and leaves it be.
    await eventually(
        lambda: worker.count("picforge_worker_messages_total", outcome="discarded") >= 2
    )
    assert (await images.get(image_id)).status == "failed"  # type: ignore[union-attr]

    await send_reprocess(images, image_id)
    image = await images.wait_for(image_id, "ready")

    assert (image.error_code, image.error_message) == (None, None)
    assert [r.name for r in image.renditions] == ["thumb"]


async def test_reprocess_rejected_now_keeps_ready_image_and_renditions(
    images: Images, start_worker: StartWorker
) -> None:
    before = await make_ready(images, start_worker, png_bytes(800, 600))
    keys = await images.rendition_keys()
    worker = await start_worker(presets=LATER_PRESETS, max_pixels=1000)

    await send_reprocess(images, before.id)
    await eventually(
        lambda: worker.count("picforge_worker_messages_total", outcome="discarded") >= 1,
        what="the job handled",
    )

    after = await images.get(before.id)
    assert after is not None and after.status == "ready"
    assert {r.name for r in after.renditions} == {"thumb", "small"}
    assert await images.rendition_keys() == keys


async def test_reprocess_of_image_not_uploaded_leaves_its_original(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    image_id = await images.add_row(size_bytes=len(hopper_png))
    await images.upload(image_id, hopper_png, "image/png")
    # Its upload's event still on its way when the job arrives: not in the queue yet.
    await images.sqs.purge_queue(QueueUrl=images.stack.queue_url)
    await send_reprocess(images, image_id)
    worker = await start_worker()
    await eventually(
        lambda: worker.count("picforge_worker_messages_total", outcome="discarded") >= 1,
        what="the job handled",
    )

    image = await images.get(image_id)
    assert image is not None and image.status == "awaiting_upload"
    listing = await images.s3.list_objects_v2(
        Bucket=images.stack.names.uploads_bucket, Prefix=original_key(image_id)
    )
    assert [item["Key"] for item in listing.get("Contents", [])] == [original_key(image_id)]
