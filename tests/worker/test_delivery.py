"""What becomes of each message, on the real queue, S3 and PostgreSQL: deleted only once its
effect is durable, redelivered harmlessly, retried when something is down, dead-lettered (its
image failed) when it keeps failing, discarded when it is not ours."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import AsyncExitStack

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.jobs import reprocess_message
from service.models import Image, ImageStatus
from service.storage import original_key, rendition_key
from tests.worker.conftest import THUMB_ONLY, Images, StartWorker, eventually
from tests.worker.hostile import avif_with_dangling_primary_item
from worker.config import WorkerSettings
from worker.events import ObjectCreated, parse_message_body
from worker.failures import client_message
from worker.main import open_worker
from worker.messages import Message, MessageQueue
from worker.metrics import Metrics
from worker.renditions import DEFAULT_PRESETS

MESSAGES = "picforge_worker_messages_total"


async def queue_is_empty(images: Images) -> bool:
    return await images.queue_counts() == (0, 0)


async def test_delivery_image_becomes_ready_and_message_is_deleted(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    worker = await start_worker(presets=DEFAULT_PRESETS)
    image_id = await images.create(hopper_png)

    image = await images.wait_for(image_id, "ready")

    assert (image.width, image.height) == (128, 128)
    assert image.thumbhash and image.dominant_color
    # A 128 px original comes out the same in every preset: stored once, named four times.
    assert {r.name for r in image.renditions} == {p.name for p in DEFAULT_PRESETS}
    thumb = rendition_key(
        image_id, image.rendition_token, "thumb", DEFAULT_PRESETS[0].version, "webp"
    )
    assert {r.key for r in image.renditions} == {thumb}
    assert await images.rendition_keys() == [thumb]
    assert await eventually(lambda: queue_is_empty(images), what="an empty queue")
    assert worker.count("picforge_worker_images_processed_total") == 1


async def receive_upload(queue: MessageQueue) -> Message | None:
    """The next message announcing an original; others (the S3 test event) are deleted."""
    for message in await queue.receive(10, wait_s=1):
        if any(isinstance(event, ObjectCreated) for event in parse_message_body(message.body)):
            return message
        await queue.delete(message)
    return None


async def test_delivery_redelivered_message_writes_no_duplicates(
    images: Images, fast_settings: WorkerSettings, hopper_png: bytes
) -> None:
    settings = fast_settings.model_copy(
        update={"worker_visibility_timeout_s": 1, "presets": DEFAULT_PRESETS}
    )
    image_id = await images.create(hopper_png)
    async with AsyncExitStack() as stack:
        worker = await open_worker(stack, settings, Metrics())
        first = await eventually(lambda: receive_upload(worker.queue), what="the upload")
        # Neither deleted nor kept hidden: SQS really delivers it again a second later.
        second = await eventually(lambda: receive_upload(worker.queue), what="a redelivery")
        assert (second.id, second.receive_count) == (first.id, 2)

        # Both copies at once (a slow first worker and the next one): the row lock orders them.
        await asyncio.gather(worker.delivery.handle(first), worker.delivery.handle(second))
        ready = await images.get(image_id)
        # And once more after it is ready (a late duplicate): it finds `ready` and leaves it be.
        await worker.delivery.handle(first)

    image = await images.get(image_id)
    assert ready is not None and image is not None
    assert image.status == ready.status == ImageStatus.READY
    assert image.updated_at == ready.updated_at
    rows = sorted((r.name, r.key, r.width, r.size_bytes) for r in image.renditions)
    assert rows == sorted((r.name, r.key, r.width, r.size_bytes) for r in ready.renditions)
    assert [name for name, *_ in rows] == sorted(p.name for p in DEFAULT_PRESETS)
    assert await images.rendition_keys() == sorted({key for _, key, *_ in rows})
    assert await queue_is_empty(images)


async def test_delivery_transient_failure_is_retried_until_it_succeeds(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    renditions = images.stack.names.renditions_bucket
    await images.s3.delete_bucket(Bucket=renditions)  # S3 refuses every PutObject
    worker = await start_worker(worker_visibility_timeout_s=1)
    image_id = await images.create(hopper_png)

    await eventually(lambda: worker.count(MESSAGES, outcome="retried") >= 1, what="a retry")
    assert (await images.get(image_id)).status == ImageStatus.PROCESSING  # type: ignore[union-attr]
    await images.s3.create_bucket(Bucket=renditions)
    image = await images.wait_for(image_id, "ready")

    assert [r.name for r in image.renditions] == ["thumb"]
    assert await eventually(lambda: queue_is_empty(images), what="an empty queue")


async def test_delivery_poison_message_is_dead_lettered_and_image_failed(
    images: Images, start_worker: StartWorker, hopper_png: bytes
) -> None:
    stack = images.stack
    redrive = {"deadLetterTargetArn": stack.dead_letter_queue_arn, "maxReceiveCount": "2"}
    await images.sqs.set_queue_attributes(
        QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": json.dumps(redrive)}
    )
    # Every delivery fails for real: the renditions bucket does not exist.
    worker = await start_worker(
        renditions_bucket="picforge-no-such-bucket", worker_visibility_timeout_s=1
    )
    image_id = await images.create(hopper_png)

    image = await images.wait_for(image_id, "failed")

    assert image.error_code == "processing_failed"
    # The client reads our words; the botocore error (bucket, endpoint) is only in the log.
    assert image.error_message == client_message("processing_failed")
    assert "NoSuchBucket" not in image.error_message
    dead = await eventually(
        lambda: images.sqs.receive_message(QueueUrl=stack.dead_letter_queue_url, WaitTimeSeconds=1),
        what="the dead-lettered message",
    )
    [message] = dead["Messages"]
    [event] = parse_message_body(message["Body"])
    assert isinstance(event, ObjectCreated) and event.key == original_key(image_id)
    assert await eventually(lambda: queue_is_empty(images), what="an empty queue")
    assert worker.count(MESSAGES, outcome="retried") == 1
    assert worker.count(MESSAGES, outcome="gave_up") == 1
    assert worker.count("picforge_worker_images_failed_total", code="processing_failed") == 1


async def test_delivery_corrupt_image_fails_on_its_first_delivery(
    images: Images, start_worker: StartWorker
) -> None:
    """A decoder refusing the bytes is a verdict on the image, recorded at once: a retry
    would only repeat it until the queue gave up (and the image read `processing_failed`)."""
    worker = await start_worker()
    image_id = await images.create(avif_with_dangling_primary_item(), content_type="image/avif")

    image = await images.wait_for(image_id, "ready", "failed", timeout_s=60)

    assert (image.status, image.error_code) == ("failed", "corrupt_image")
    assert await eventually(lambda: queue_is_empty(images), what="an empty queue")
    assert worker.count(MESSAGES, outcome="retried") == 0
    assert worker.count("picforge_worker_images_failed_total", code="corrupt_image") == 1


async def test_delivery_image_given_up_on_is_taken_up_again_by_redrive(
    images: Images,
    start_worker: StartWorker,
    hopper_png: bytes,
) -> None:
    image_id = await images.add_row(size_bytes=len(hopper_png))
    await images.mark_failed(image_id, code="processing_failed")
    await start_worker()

    await images.upload(image_id, hopper_png, "image/png")  # as a DLQ redrive would deliver it
    image = await images.wait_for(image_id, "ready")

    assert (image.error_code, image.error_message) == (None, None)


async def test_delivery_discards_what_is_not_ours_and_keeps_working(
    images: Images,
    start_worker: StartWorker,
    sessions: async_sessionmaker[AsyncSession],
    hopper_png: bytes,
) -> None:
    worker = await start_worker()
    garbage = [
        "hello",
        "{}",
        '{"type": "picforge.unknown"}',
        '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
        reprocess_message(uuid.uuid4()),  # an image that never existed
    ]
    for body in garbage:
        await images.sqs.send_message(QueueUrl=images.stack.queue_url, MessageBody=body)
    await images.upload(uuid.uuid4(), hopper_png, "image/png")  # a key no image has
    await images.s3.put_object(
        Bucket=images.stack.names.uploads_bucket, Key="originals/not-an-id", Body=hopper_png
    )
    deleted = await images.add_row(size_bytes=len(hopper_png))
    async with sessions.begin() as session:
        await session.execute(delete(Image).where(Image.id == deleted))
    await images.upload(deleted, hopper_png, "image/png")  # deleted before its upload
    not_uploaded = await images.add_row()
    await images.sqs.send_message(
        QueueUrl=images.stack.queue_url, MessageBody=reprocess_message(not_uploaded)
    )
    good = await images.create(hopper_png)

    good_image = await images.wait_for(good, "ready")
    assert good_image.renditions
    assert await eventually(lambda: queue_is_empty(images), what="an empty queue")
    assert not worker.task.done()
    assert await images.get(deleted) is None
    assert (await images.get(not_uploaded)).status == "awaiting_upload"  # type: ignore[union-attr]
    assert await images.rendition_keys() == [
        rendition_key(good, good_image.rendition_token, "thumb", THUMB_ONLY[0].version, "webp")
    ]
    # garbage, 3 uploads that are not images we know, 1 job too early, and S3's test event
    assert worker.count(MESSAGES, outcome="discarded") == len(garbage) + 3 + 1 + 1
    assert worker.count(MESSAGES, outcome="done") == 1
