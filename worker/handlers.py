"""One event in, renditions and a finished record out.

Fetch the original, render it in the render pool (Pillow never runs on the event loop), store
the renditions under keys derived from the image id and preset, then record them. Every step
can be repeated: a redelivered message rewrites the same objects and the same rows.

A handler returns an `Outcome` when the event is dealt with for good (the image is ready, or
failed for a reason in the image itself, or there was nothing to do), and raises on anything
transient (S3, the database, a render process that died), so the message is delivered again.

A failed image gets a code and the fixed text of it (`worker.failures`); what went wrong in
detail goes to the log, with the image id.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from botocore.exceptions import ClientError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.models import Rendition
from service.storage import (
    ObjectsNotDeleted,
    delete_image_objects,
    erase_versions,
    image_id_from_original_key,
    original_key,
    rendition_key,
    renditions_prefix,
)
from worker import records
from worker.costs import RenderBudget
from worker.events import Event, ObjectCreated, ReprocessRequested
from worker.failures import (
    FAILURE_CODES,
    ORIGINAL_MISSING,
    SIZE_EXCEEDS_DECLARATION,
    client_message,
)
from worker.pool import RenderLimitExceeded, RenderPool
from worker.render_job import render_within_budget
from worker.renditions import ImageRejected, Limits, Preset, RenderResult
from worker.sandbox import Usage

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

EXTENSIONS: Final = {"webp": "webp", "jpeg": "jpg", "avif": "avif"}
# The bytes under a rendition key never change (see `rendition_key`): cache them forever.
CACHE_CONTROL: Final = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class RenderContext:
    """What a handler needs, opened once per worker process."""

    sessions: async_sessionmaker[AsyncSession]
    s3: S3Client
    pool: RenderPool
    uploads_bucket: str
    renditions_bucket: str
    presets: Sequence[Preset]
    limits: Limits
    budget: RenderBudget


@dataclass(frozen=True)
class Outcome:
    result: Literal["ready", "failed", "skipped"]
    detail: str
    image_id: uuid.UUID | None = None
    code: str | None = None  # for `failed`


def image_id_of(event: Event) -> uuid.UUID | None:
    if isinstance(event, ReprocessRequested):
        return event.image_id
    return image_id_from_original_key(event.key)


async def handle_event(context: RenderContext, event: Event) -> Outcome:
    if isinstance(event, ReprocessRequested):
        verdict, original = await records.start_reprocessing(context.sessions, event.image_id)
        if verdict == "gone":
            # Deleted: a delivery of this job that rendered before the DELETE and failed after
            # it (a cut connection, a timeout) wrote renditions it never took back.
            await erase_image(context, event.image_id)
            return Outcome("skipped", "image unknown or deleted: objects removed", event.image_id)
        if original is None:
            return Outcome("skipped", "image not uploaded", event.image_id)
        return await process_original(context, event.image_id, original)
    return await handle_object_created(context, event)


async def handle_object_created(context: RenderContext, event: ObjectCreated) -> Outcome:
    image_id = image_id_from_original_key(event.key)
    if event.bucket != context.uploads_bucket or image_id is None:
        return Outcome("skipped", f"not an original we issued: {event.bucket}/{event.key}")
    first_version = await first_version_id(context, image_id) if event.version_id else None
    verdict, original = await records.claim_upload(
        context.sessions,
        image_id,
        version_id=event.version_id,
        first_version_id=first_version or event.version_id,
    )
    if verdict == "gone":
        # Uploaded for an image deleted or expired (or never made): nobody will ever want it,
        # nor renditions a render of it wrote and could not take back (`process_original`).
        await erase_image(context, image_id)
        return Outcome("skipped", "image unknown, deleted or expired: objects removed", image_id)
    if verdict == "later_version":
        # The ticket used again: the pinned version stays the original, this one goes.
        await remove_version(context, event.key, str(event.version_id))
        return Outcome("skipped", f"later upload {event.version_id} removed", image_id)
    if original is None:
        return Outcome("skipped", "image already finished", image_id)
    return await process_original(context, image_id, original)


async def erase_image(context: RenderContext, image_id: uuid.UUID) -> None:
    """Erase every object of an image that is gone, every version, listed rather than taken
    from our own writes: the renditions of any render of it, whichever delivery wrote them."""
    await delete_image_objects(
        context.s3,
        uploads_bucket=context.uploads_bucket,
        renditions_bucket=context.renditions_bucket,
        image_id=image_id,
    )


async def remove_version(context: RenderContext, key: str, version_id: str) -> None:
    try:
        await context.s3.delete_object(Bucket=context.uploads_bucket, Key=key, VersionId=version_id)
    except ClientError as exc:
        # A redelivered event: the version went the first time.
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "NoSuchVersion"):
            raise


async def first_version_id(context: RenderContext, image_id: uuid.UUID) -> str | None:
    """The oldest version S3 holds of the image's original: the first upload, whichever
    upload's event arrives first."""
    key = original_key(image_id)
    listing = await context.s3.list_object_versions(Bucket=context.uploads_bucket, Prefix=key)
    # S3 lists a key's versions newest first.
    versions = [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key]
    return versions[-1] if versions else None


async def process_original(
    context: RenderContext, image_id: uuid.UUID, original: records.Original
) -> Outcome:
    data = await fetch_original(context, image_id, original.version_id, original.size_bytes)
    if data is None:
        return await fail(context, image_id, ORIGINAL_MISSING, FAILURE_CODES[ORIGINAL_MISSING])
    if isinstance(data, int):
        detail = f"{data} bytes, declared {original.size_bytes}"
        return await fail(context, image_id, SIZE_EXCEEDS_DECLARATION, detail)
    started = time.perf_counter()
    try:
        finished = await context.pool.run_measured(
            render_within_budget,
            data,
            presets=context.presets,
            limits=context.limits,
            budget=context.budget,
            declared_content_type=original.content_type,
            cpu_s=context.budget.cpu_max_s,
        )
    except RenderLimitExceeded as overrun:
        return await fail(
            context, image_id, overrun.code, f"{overrun.detail} ({cost(overrun.usage)})"
        )
    if isinstance(finished.error, ImageRejected):
        rejected = finished.error
        return await fail(
            context, image_id, rejected.code, f"{rejected.message} ({cost(finished.usage)})"
        )
    result = finished.result()  # any other error is a bug or a resource problem: retried
    render_s = time.perf_counter() - started

    stored = await store_renditions(
        context, image_id=image_id, token=original.rendition_token, result=result
    )
    stale_keys = await records.record_ready(
        context.sessions,
        image_id,
        width=result.width,
        height=result.height,
        placeholder=records.Placeholder(result.thumbhash, result.dominant_color),
        renditions=stored,
    )
    if stale_keys is None:
        # Deleted while we rendered: take back what we wrote, so nothing is orphaned. Should S3
        # refuse, the delivery is retried and finds the image gone (`handle_event`).
        await erase_image(context, image_id)
        return Outcome("skipped", "image deleted while rendering", image_id)
    # Renditions of presets no longer configured. Their rows are gone already: a failure here
    # leaves unreferenced objects, never a reference to a missing one.
    await delete_objects(context, image_id, stale_keys)
    detail = f"{len(stored)} renditions (render {render_s:.3f} s, {cost(finished.usage)})"
    return Outcome("ready", detail, image_id=image_id)


def cost(usage: Usage) -> str:
    """A render's cost as the log states it (a killed child's peak is unknown: `peak_mib=-`)."""
    peak = usage.peak_rss_bytes
    return f"cpu_s={usage.cpu_s:.3f} peak_mib={'-' if peak is None else round(peak / 2**20)}"


async def fail(context: RenderContext, image_id: uuid.UUID, code: str, detail: str) -> Outcome:
    """Record `code` with its client message; `detail` (ours or a library's) is for the log."""
    message = client_message(code)
    detail = " ".join(detail.split())  # one log line per outcome, whatever a codec said
    if await records.record_failure(context.sessions, image_id, code=code, message=message):
        return Outcome("failed", detail, image_id, code)
    # A `ready` image being reprocessed keeps its renditions; a deleted one has none.
    return Outcome("skipped", f"not marked {code} (ready or deleted): {detail}", image_id)


async def give_up(context: RenderContext, event: Event, reason: str) -> Outcome | None:
    """Mark the event's image failed with `processing_failed`, on the last delivery the queue
    allows before it dead-letters the message. `reason` is for the log only."""
    image_id = image_id_of(event)
    if image_id is None:
        return None
    return await fail(context, image_id, records.PROCESSING_FAILED, reason)


async def fetch_original(
    context: RenderContext, image_id: uuid.UUID, version_id: str | None, declared_bytes: int
) -> bytes | int | None:
    """The pinned version of the original (the current one when none is pinned); or, for an
    original larger than declared, its size, unread: a POST policy or a signed length holds
    S3 to the declaration, but a multipart upload completed by other means may not be."""
    key = original_key(image_id)
    try:
        if version_id:
            original = await context.s3.get_object(
                Bucket=context.uploads_bucket, Key=key, VersionId=version_id
            )
        else:
            original = await context.s3.get_object(Bucket=context.uploads_bucket, Key=key)
        if original["ContentLength"] > declared_bytes:
            original["Body"].close()
            return original["ContentLength"]
        async with original["Body"] as body:
            data: bytes = await body.read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion", "404"):
            return None
        raise
    return data


async def store_renditions(
    context: RenderContext, *, image_id: uuid.UUID, token: str, result: RenderResult
) -> list[Rendition]:
    """Put each rendition under its key; renditions whose bytes are identical to an earlier
    one's (`shares_with`) point at that one's object rather than storing a copy."""
    versions = {preset.name: preset.version for preset in context.presets}
    stored: dict[str, Rendition] = {}
    for rendition in result.renditions:
        shared = stored.get(rendition.shares_with) if rendition.shares_with else None
        if shared is not None:
            key = shared.key
        else:
            key = rendition_key(
                image_id,
                token,
                rendition.name,
                versions[rendition.name],
                EXTENSIONS[rendition.format],
            )
            await context.s3.put_object(
                Bucket=context.renditions_bucket,
                Key=key,
                Body=rendition.data,
                ContentType=rendition.content_type,
                CacheControl=CACHE_CONTROL,
            )
        stored[rendition.name] = Rendition(
            name=rendition.name,
            key=key,
            width=rendition.width,
            height=rendition.height,
            format=rendition.format,
            size_bytes=len(rendition.data),
        )
    return list(stored.values())


async def delete_objects(context: RenderContext, image_id: uuid.UUID, keys: Sequence[str]) -> None:
    """Erase every version of these renditions of the image: on a versioned bucket a plain
    delete would only hide them behind a delete marker."""
    if not keys:
        return
    try:
        await erase_versions(
            context.s3,
            bucket=context.renditions_bucket,
            prefix=renditions_prefix(image_id),
            keys=set(keys),
        )
    except ObjectsNotDeleted as exc:
        # Unreferenced objects, never a reference to a missing one: reconcile finds them.
        log.error("renditions not deleted: image_id=%s %s", image_id, exc)
