"""One uploaded original in, renditions and a finished record out.

Fetch the original, render it in the process pool (Pillow never runs on the event loop), store
the renditions under keys derived from the image id, then record them. Every step can be
repeated: a redelivered message rewrites the same objects and the same rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.models import Rendition
from service.storage import image_id_from_original_key, rendition_key
from worker import records
from worker.events import ObjectCreated
from worker.renditions import ImageRejected, Limits, Preset, RenderResult, render

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

EXTENSIONS = {"webp": "webp", "jpeg": "jpg", "avif": "avif"}
# Renditions never change under a key for a given image: clients and CDNs may cache them.
CACHE_CONTROL = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class RenderContext:
    """What a handler needs, opened once per worker process."""

    sessions: async_sessionmaker[AsyncSession]
    s3: S3Client
    pool: Executor
    uploads_bucket: str
    renditions_bucket: str
    presets: Sequence[Preset]
    limits: Limits


async def handle_object_created(context: RenderContext, event: ObjectCreated) -> str:
    """Process one uploaded original. Returns the outcome for the log line; raises on a
    transient failure so the message is delivered again."""
    image_id = image_id_from_original_key(event.key)
    if event.bucket != context.uploads_bucket or image_id is None:
        return "ignored: not an original we issued"
    declared_type = await records.start_processing(context.sessions, image_id)
    if declared_type is None:
        return "ignored: image unknown, deleted or already finished"
    try:
        original = await context.s3.get_object(Bucket=event.bucket, Key=event.key)
        async with original["Body"] as body:
            data = await body.read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return "ignored: original is gone"
        raise

    started = time.perf_counter()
    try:
        result = await asyncio.get_running_loop().run_in_executor(
            context.pool,
            partial(render, data, presets=context.presets, limits=context.limits),
        )
    except ImageRejected as rejected:
        await records.record_failure(
            context.sessions, image_id, code=rejected.code, message=rejected.message
        )
        return f"failed: {rejected.code}"
    render_s = time.perf_counter() - started

    stored = await store_renditions(context, image_id=image_id, result=result)
    if not await records.record_ready(
        context.sessions, image_id, width=result.width, height=result.height, renditions=stored
    ):
        # Deleted while we rendered: take back what we wrote, so nothing is orphaned.
        await delete_objects(context, [r.key for r in stored])
        return "discarded: image deleted while rendering"
    return f"ready: {len(stored)} renditions in {render_s:.3f} s"


async def store_renditions(
    context: RenderContext, *, image_id: uuid.UUID, result: RenderResult
) -> list[Rendition]:
    stored = []
    for rendition in result.renditions:
        key = rendition_key(image_id, rendition.name, EXTENSIONS[rendition.format])
        await context.s3.put_object(
            Bucket=context.renditions_bucket,
            Key=key,
            Body=rendition.data,
            ContentType=rendition.content_type,
            CacheControl=CACHE_CONTROL,
        )
        stored.append(
            Rendition(
                name=rendition.name,
                key=key,
                width=rendition.width,
                height=rendition.height,
                format=rendition.format,
                size_bytes=len(rendition.data),
            )
        )
    return stored


async def delete_objects(context: RenderContext, keys: list[str]) -> None:
    if keys:
        await context.s3.delete_objects(
            Bucket=context.renditions_bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
